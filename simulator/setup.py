"""The only ORM the simulator touches: create (or reuse) its organizations, groups, users, memberships and
API tokens. All traffic afterwards goes through the public HTTP API and the client websocket."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SimUser:
    username: str
    api_key: str
    organization: str  # slug
    group_ids: tuple[str, ...]


def ensure_population(orgs: int, groups: int, users: int) -> list[SimUser]:
    """``orgs`` organizations ``sim-org-<i>``, each with ``groups`` groups and ``users`` users
    ``sim-org-<i>-user<k>`` who are members of every group of their organization. Idempotent."""
    from django.db import transaction
    from rest_framework.authtoken.models import Token

    from messaging.models import Group, GroupMember, Organization, User

    population: list[SimUser] = []
    with transaction.atomic():
        for i in range(1, orgs + 1):
            org, _ = Organization.objects.get_or_create(slug=f"sim-org-{i}", defaults={"name": f"Simulated Org {i}"})
            org_groups = [
                Group.objects.get_or_create(organization=org, name=f"sim-group-{j}")[0] for j in range(1, groups + 1)
            ]
            members = []
            for k in range(1, users + 1):
                user, created = User.objects.get_or_create(
                    username=f"sim-org-{i}-user{k}",
                    defaults={"organization": org, "email": f"user{k}@sim-org-{i}.example"},
                )
                if created:
                    user.set_unusable_password()
                    user.save(update_fields=["password"])
                members.append(user)
            # One set-based insert of the missing memberships (unique (group, user) makes it idempotent).
            GroupMember.objects.bulk_create(
                [GroupMember(group=g, user=u) for g in org_groups for u in members], ignore_conflicts=True
            )
            group_ids = tuple(str(g.id) for g in org_groups)
            for user in members:
                key = Token.objects.get_or_create(user=user)[0].key
                population.append(SimUser(user.username, key, org.slug, group_ids))
    return population

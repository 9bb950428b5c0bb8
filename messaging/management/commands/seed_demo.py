"""Seed the demo: two organizations, groups, members, staff roles and a demo admin. Idempotent."""

from __future__ import annotations

from django.contrib.auth.models import Group as Role
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from messaging.models import Group, GroupMember, Organization, User

STAFF_ROLES = ("admins", "support", "managers")
DEMO_PASSWORD = "pushwatch-demo"
DEMO_STAFF = {"admin": "admins", "support": "support", "manager": "managers"}
DEMO_ORGS = {
    "acme": ("Acme Corp", ["general", "engineering", "random"]),
    "globex": ("Globex", ["general", "sales"]),
}
MEMBERS_PER_ORG = 6


class Command(BaseCommand):
    help = "Create the demo organizations, groups, users and staff logins (safe to run again)."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        roles = {name: Role.objects.get_or_create(name=name)[0] for name in STAFF_ROLES}
        for username, role in DEMO_STAFF.items():
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "email": f"{username}@pushwatch.local",
                    "is_staff": True,
                    "is_superuser": role == "admins",
                },  # fmt: skip
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            user.groups.add(roles[role])
        for slug, (name, group_names) in DEMO_ORGS.items():
            org, _ = Organization.objects.get_or_create(slug=slug, defaults={"name": name})
            users = []
            for i in range(1, MEMBERS_PER_ORG + 1):
                user, created = User.objects.get_or_create(
                    username=f"{slug}-user{i}", defaults={"organization": org, "email": f"user{i}@{slug}.example"}
                )
                if created:
                    user.set_password(DEMO_PASSWORD)
                    user.save()
                Token.objects.get_or_create(user=user)
                users.append(user)
            for group_name in group_names:
                group, _ = Group.objects.get_or_create(organization=org, name=group_name)
                for user in users:
                    GroupMember.objects.get_or_create(group=group, user=user)
        self.stdout.write(
            self.style.SUCCESS(
                f"demo data ready: {len(DEMO_ORGS)} organizations, staff logins "
                + ", ".join(f"{u}/{DEMO_PASSWORD} ({r})" for u, r in DEMO_STAFF.items())
            )
        )

"""Factories for the shared models (factory-boy, real database). App-specific ones live beside their tests."""

from __future__ import annotations

import uuid

import factory
from django.utils import timezone
from rest_framework.authtoken.models import Token

from messaging.models import Group, GroupMember, Message, Organization, User
from pushes.models import UserDevice


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"org-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    organization = factory.SubFactory(OrganizationFactory)
    password = factory.django.Password("pw-test-123")


class StaffUserFactory(UserFactory):
    organization = None
    is_staff = True

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if create and extracted:
            from django.contrib.auth.models import Group as Role

            self.groups.add(Role.objects.get_or_create(name=extracted)[0])


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"group-{n}")


class GroupMemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GroupMember

    group = factory.SubFactory(GroupFactory)
    user = factory.SubFactory(UserFactory, organization=factory.SelfAttribute("..group.organization"))


class MessageFactory(factory.django.DjangoModelFactory):
    """Direct rows for read-side tests; sends under test go through messaging.services."""

    class Meta:
        model = Message

    group = factory.SubFactory(GroupFactory)
    sender = factory.SubFactory(UserFactory, organization=factory.SelfAttribute("..group.organization"))
    seq = factory.Sequence(lambda n: n + 1)
    client_generated_id = factory.LazyFunction(uuid.uuid4)
    body = "hello"


class UserDeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UserDevice

    user = factory.SubFactory(UserFactory)
    platform = "android"
    token = factory.LazyFunction(lambda: f"tok{uuid.uuid4().hex}{uuid.uuid4().hex}")
    app_version = "1.0.0"
    last_seen_at = factory.LazyFunction(timezone.now)


def token_for(user: User) -> str:
    return Token.objects.get_or_create(user=user)[0].key

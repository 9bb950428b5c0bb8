from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from messaging.models import Group, GroupMember, Message, Organization, User


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "created_at")
    search_fields = ("slug", "name")


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "organization", "is_staff", "is_active")
    list_filter = ("organization", "is_staff", "is_active", "groups")
    list_select_related = ("organization",)
    fieldsets = (*BaseUserAdmin.fieldsets, ("Pushwatch", {"fields": ("organization",)}))


class GroupMemberInline(admin.TabularInline):
    model = GroupMember
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = ("name", "organization", "last_seq", "created_at")
    list_filter = ("organization",)
    search_fields = ("name", "id")
    readonly_fields = ("last_seq",)
    inlines = [GroupMemberInline]


@admin.register(GroupMember)
class GroupMemberAdmin(admin.ModelAdmin):
    list_display = ("group", "user", "is_blocked", "delivered_seq", "read_seq")
    list_filter = ("is_blocked", "group__organization")
    search_fields = ("user__username", "group__name")
    raw_id_fields = ("group", "user")
    list_select_related = ("group", "user")


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("group", "seq", "sender", "status", "created_at")
    list_filter = ("status", "group__organization")
    search_fields = ("id", "client_generated_id", "sender__username")
    raw_id_fields = ("group", "sender")
    list_select_related = ("group", "sender")
    readonly_fields = ("seq", "client_generated_id", "created_at")

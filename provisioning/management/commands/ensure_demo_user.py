"""Create the demo tech lead for `make run` if there is none, printing its password once; or give it a
new password (--reset-password)."""

import os
import secrets
import sys

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from provisioning.audit.chain import audit_record
from provisioning.identity.permissions import TECH_LEADS
from provisioning.models import ApprovalRule, Customer
from provisioning.registry import role_arn_for
from provisioning.teams import customer_team_join


def _reset_command() -> str:
    """The command to type, with this interpreter's `python` (`.venv/bin/python` under `make run`)."""
    where = os.path.dirname(os.path.relpath(sys.executable))
    python = "python" if where.startswith("..") else os.path.join(where, "python")
    return f"{python} manage.py ensure_demo_user --reset-password"


class Command(BaseCommand):
    help = "Create the demo tech lead account (username 'techlead') if it does not exist."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="techlead")
        parser.add_argument(
            "--demo-customer",
            action="store_true",
            help="On the sandbox, also create the demo customer Demo Co (its role is deployed like any customer's).",
        )
        parser.add_argument(
            "--reset-password",
            action="store_true",
            help="Give the demo tech lead a new generated password (printed once); the old one stops working.",
        )
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="Where the portal is, for the message.")

    def handle(self, *args, username, demo_customer, reset_password, url, **options):
        if demo_customer and settings.AWS_ENDPOINT_URL and not Customer.objects.exists():
            Customer.objects.create(
                name="Demo Co",
                slug="demo-co",
                aws_account_id="111122223333",
                default_region="us-east-1",
                role_arn=role_arn_for("111122223333"),
                # The demo onboards out of the box with one tech lead: no second person to approve it.
                approval_rule=ApprovalRule.NOTHING,
            )
            self.stdout.write(
                "Demo customer 'Demo Co' (sandbox account 111122223333) created; its plans need no approval "
                "(offboarding still does)."
            )
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is not None and not reset_password:
            self._demo_team(user, demo_customer)
            self.stdout.write(
                f"Log in at {url} as '{username}' with the password printed when it was made. "
                f"Lost it? Get a new one: {_reset_command()}"
            )
            return
        password = secrets.token_urlsafe(12)
        if user is None:
            user = User.objects.create_user(
                username=username, email=f"{username}@example.com", password=password, is_staff=True
            )
            user.groups.add(Group.objects.get(name=TECH_LEADS))
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
            audit_record(action="auth.password_reset", actor_label="manage.py ensure_demo_user", target=username)
        self._demo_team(user, demo_customer)
        self.stdout.write(
            self.style.SUCCESS(f"Log in at {url} as '{username}' with password: {password}  (shown only now)")
        )

    def _demo_team(self, user, demo_customer: bool) -> None:
        """The demo tech lead is on Demo Co's team (as an Admin would put them): only the team runs it."""
        customer = Customer.objects.filter(slug="demo-co").first() if demo_customer else None
        if customer is not None:
            customer_team_join(customer=customer, user=user, via="manage.py ensure_demo_user")

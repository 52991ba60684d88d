"""Create the demo tech lead for `make run` if there is none, printing its password once."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from provisioning.models import Customer
from provisioning.permissions import TECH_LEADS


class Command(BaseCommand):
    help = "Create the demo tech lead account (username 'techlead') if it does not exist."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="techlead")
        parser.add_argument(
            "--demo-customer",
            action="store_true",
            help="On the sandbox, also create a demo customer whose role any account id accepts.",
        )

    def handle(self, *args, username, demo_customer, **options):
        if demo_customer and settings.AWS_ENDPOINT_URL and not Customer.objects.exists():
            Customer.objects.create(
                name="Demo Co",
                slug="demo-co",
                aws_account_id="111122223333",
                default_region="us-east-1",
                role_arn="arn:aws:iam::111122223333:role/OnrampAccess",
            )
            self.stdout.write("Demo customer 'Demo Co' (sandbox account 111122223333) created.")
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(
                f"Demo tech lead '{username}' exists already (its password was printed when it was made)."
            )
            return
        password = secrets.token_urlsafe(12)
        user = User.objects.create_user(
            username=username, email=f"{username}@example.com", password=password, is_staff=True
        )
        user.groups.add(Group.objects.get(name=TECH_LEADS))
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo tech lead created. Log in at http://127.0.0.1:8000/ as '{username}' with password: {password}"
            )
        )
        self.stdout.write("This password is shown only now.")

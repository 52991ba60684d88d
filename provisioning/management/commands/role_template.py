"""The role's published templates: set up the agency's bucket, publish the current version, show it.

Run by an operator with their own AWS credentials (--profile, else the standard chain), never Onramp's identity,
whose policy allows assuming customers' roles and nothing else.
"""

import getpass

from botocore.exceptions import BotoCoreError
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from provisioning.aws.accounts import operator_client
from provisioning.aws.calls import aws_work
from provisioning.aws.errors import error_translate
from provisioning.errors import OnrampError
from provisioning.role.published import (
    role_template_bucket_prepare,
    role_template_publish,
    template_content,
    template_url,
)


class Command(BaseCommand):
    help = (
        "bucket: create ROLE_TEMPLATE_BUCKET readable by anyone under its templates' prefix; publish: upload the "
        "current role template version if missing (refused if that version was published with other content); "
        "show: print the current version's template and URL."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["bucket", "publish", "show"])
        parser.add_argument("--profile", default="", help="The operator's AWS profile (default: the standard chain).")

    def handle(self, *args, action, profile, **options):
        bucket, region = settings.ROLE_TEMPLATE_BUCKET, settings.ROLE_TEMPLATE_REGION
        if action == "show":
            self.stdout.write(template_content(portal_account_id=settings.PORTAL_AWS_ACCOUNT_ID).decode())
            self.stdout.write(f"URL: {template_url(bucket=bucket or '<ROLE_TEMPLATE_BUCKET>', region=region)}")
            return
        operator = f"operator:{getpass.getuser()}" + (f" (profile {profile})" if profile else "")
        try:
            with aws_work(actor_label=operator):
                s3 = operator_client("s3", region=region, profile=profile)
                if action == "bucket":
                    for line in role_template_bucket_prepare(s3=s3, bucket=bucket, region=region):
                        self.stdout.write(line)
                    return
                published = role_template_publish(
                    s3=s3,
                    bucket=bucket,
                    region=region,
                    portal_account_id=settings.PORTAL_AWS_ACCOUNT_ID,
                    actor_label=operator,
                )
        except OnrampError as exc:
            raise CommandError(str(exc)) from exc
        except BotoCoreError as exc:  # no credentials, no answer
            raise CommandError(str(error_translate(exc, doing=f"role_template {action}"))) from exc
        done = "published" if published.uploaded else "already published, unchanged"
        self.stdout.write(f"Role template version {published.version} {done}: {published.url}")
        self.stdout.write(f"sha256 {published.sha256}")

"""Deploy customers' Onramp roles into the sandbox AWS, as each customer's own administrator would, after
publishing the role's template in the agency's bucket as the agency's operator would.

On AWS the customer deploys Onramp's CloudFormation template in their account (the admin's download); the
portal never makes the role it assumes. On the sandbox nobody else is there to do it, so this script plays
the customer: for each customer reached by a role whose role is missing, or older than the template
Onramp needs, it creates the stack from provisioning's own template, with that customer's external id and
the portal's account, through the sandbox's CloudFormation API.

    .venv/bin/python -m sandbox.roles                      the template, then every customer (`make run`)
    .venv/bin/python -m sandbox.roles --customer demo-co   one customer, by slug (added later in the admin)

It reads the portal's database and settings from the same environment and .env as manage.py, and talks
to AWS_ENDPOINT_URL only: without one it refuses (it never deploys anything on real AWS). Development
tooling: the portal never imports it.
"""

import argparse
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django  # noqa: E402

django.setup()

from botocore.exceptions import ClientError  # noqa: E402
from django.conf import settings  # noqa: E402

from provisioning.models import Customer  # noqa: E402
from provisioning.registry import ROLE_NAME, ROLE_TEMPLATE_VERSION, ROLE_VERSION_TAG  # noqa: E402
from provisioning.role.published import role_template_bucket_prepare, role_template_publish  # noqa: E402
from provisioning.role.template import cloudformation_template  # noqa: E402
from provisioning.vocabulary import Access  # noqa: E402

# The customer's administrator in each sandbox account (the strict sandbox's SandboxAdmin; any role on moto).
from sandbox.controller import admin_session  # noqa: E402

STACK = "onramp-access"


def sandbox_wait(url: str, timeout: float) -> None:
    """`make run` starts the sandbox beside migrate: wait until it answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/moto-api/", timeout=2):  # noqa: S310 (loopback)
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"The sandbox AWS at {url} did not answer within {timeout:.0f} s.") from None
            time.sleep(0.25)


def _deployed(iam, external_id: str) -> int | None:
    """The version of the role in the account, if it is there and trusts this external id; None otherwise."""
    try:
        role = iam.get_role(RoleName=ROLE_NAME)["Role"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NoSuchEntity":
            return None
        raise
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    ids = {
        value
        for statement in trust.get("Statement", [])
        for value in [statement.get("Condition", {}).get("StringEquals", {}).get("sts:ExternalId")]
        if value
    }
    if external_id not in ids:
        return None
    tags = {tag["Key"]: tag["Value"] for tag in iam.list_role_tags(RoleName=ROLE_NAME)["Tags"]}
    version = tags.get(ROLE_VERSION_TAG, "0")
    return int(version) if version.isdigit() else 0


def role_deploy(*, customer: Customer, url: str) -> str:
    """Deploy the customer's role unless the current one is there; a sentence saying what was done."""
    where = f"{customer.name} (account {customer.aws_account_id})"
    if customer.access != Access.ROLE:
        return f"{where}: reached with stored keys, no role to deploy."
    if customer.role_arn != f"arn:aws:iam::{customer.aws_account_id}:role/{ROLE_NAME}":
        return f"{where}: its role {customer.role_arn or '(none)'} is not the template's {ROLE_NAME}: left alone."
    session = admin_session(url, customer.aws_account_id)
    iam = session.client("iam", endpoint_url=url, region_name="us-east-1")
    version = _deployed(iam, customer.external_id)
    if version is not None and version >= ROLE_TEMPLATE_VERSION:
        return f"{where}: role {ROLE_NAME} is there (template version {version})."
    cfn = session.client("cloudformation", endpoint_url=url, region_name="us-east-1")
    if any(s["StackName"] == STACK for s in cfn.list_stacks(StackStatusFilter=["CREATE_COMPLETE"])["StackSummaries"]):
        cfn.delete_stack(StackName=STACK)  # an older template's stack, or another external id: made again
    elif version is not None or _role_exists(iam):
        return f"{where}: a role {ROLE_NAME} made outside this script is there (not from its stack): left alone."
    template = cloudformation_template(
        customer_name=customer.name,
        portal_account_id=settings.PORTAL_AWS_ACCOUNT_ID,
        external_id=customer.external_id,
    )
    cfn.create_stack(StackName=STACK, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_NAMED_IAM"])
    status = cfn.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"]
    if status != "CREATE_COMPLETE":
        raise SystemExit(f"{where}: the stack {STACK} is {status}, not CREATE_COMPLETE.")
    return f"{where}: role {ROLE_NAME} deployed from Onramp's template version {ROLE_TEMPLATE_VERSION}."


def template_publish(*, url: str) -> list[str]:
    """The agency's operator on the sandbox: ROLE_TEMPLATE_BUCKET made (readable by anyone under its prefix)
    and the current version published, as `manage.py role_template bucket` and `publish` do on AWS."""
    s3 = admin_session(url, settings.PORTAL_AWS_ACCOUNT_ID).client(
        "s3", endpoint_url=url, region_name=settings.ROLE_TEMPLATE_REGION
    )
    bucket, region = settings.ROLE_TEMPLATE_BUCKET, settings.ROLE_TEMPLATE_REGION
    done = role_template_bucket_prepare(s3=s3, bucket=bucket, region=region)
    published = role_template_publish(
        s3=s3,
        bucket=bucket,
        region=region,
        portal_account_id=settings.PORTAL_AWS_ACCOUNT_ID,
        actor_label="sandbox.roles",
    )
    state = "published" if published.uploaded else "already published"
    return [*done, f"Role template version {published.version} {state}: {published.url}"]


def _role_exists(iam) -> bool:
    try:
        iam.get_role(RoleName=ROLE_NAME)
    except ClientError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customer", default="", help="The customer's slug (default: every customer).")
    parser.add_argument("--wait", type=float, default=60, help="Seconds to wait for the sandbox to answer.")
    args = parser.parse_args()
    url = settings.AWS_ENDPOINT_URL
    if not url:
        print("AWS_ENDPOINT_URL is not set: this deploys roles into the sandbox AWS only.", file=sys.stderr)
        return 2
    if args.customer:
        wanted = list(Customer.objects.filter(slug=args.customer))
        if not wanted:
            print(f"No customer with the slug {args.customer!r}.", file=sys.stderr)
            return 2
    else:
        wanted = list(Customer.objects.filter(access=Access.ROLE, offboarded_at__isnull=True).order_by("pk"))
    sandbox_wait(url, args.wait)
    if settings.ROLE_TEMPLATE_BUCKET and not args.customer:
        for line in template_publish(url=url):
            print(line, flush=True)
    for customer in wanted:
        print(role_deploy(customer=customer, url=url), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The role's CloudFormation template, published once per version in the agency's own S3 bucket.

CloudFormation reads a TemplateURL with the rights of whoever creates the stack (the customer), so the published
objects are readable by any AWS principal: the bucket's policy grants s3:GetObject on the templates' prefix to
everyone, and the bucket's Block Public Access allows that policy (ACLs stay blocked). The bucket holds nothing
else. A template holds no secret (the external id is a parameter) but names the agency's account id.

An operator publishes with their own credentials (`manage.py role_template bucket|publish`); Onramp's own
identity keeps exactly its documented policy and never writes here. A published version is never changed: a
template whose content differs from what a version was published with needs a new ROLE_TEMPLATE_VERSION.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from botocore.exceptions import ClientError
from django.db import IntegrityError, transaction

from provisioning.audit.chain import audit_record
from provisioning.aws.errors import error_code, error_translate
from provisioning.errors import OnrampError
from provisioning.models import PublishedTemplate
from provisioning.registry import ROLE_TEMPLATE_VERSION
from provisioning.role.template import published_template

PREFIX = "onramp-role/"
STACK_NAME = "onramp-access"  # the stack the customer creates (letters, digits and hyphens, a letter first)
# The bucket's Block Public Access: public ACLs stay blocked and ignored (the bucket owner owns every object and
# ACLs are off); a public bucket policy is allowed, and honoured, for this bucket only.
PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": False,
    "RestrictPublicBuckets": False,
}


class TemplateConflict(OnrampError):
    """A published version whose content differs from this Onramp's template of the same version."""


def template_key(*, version: int = ROLE_TEMPLATE_VERSION) -> str:
    """The stable key of a version's template: never reused for other content."""
    return f"{PREFIX}v{version}.json"


def template_url(*, bucket: str, region: str, version: int = ROLE_TEMPLATE_VERSION) -> str:
    """The template's virtual-hosted S3 URL, the form CloudFormation's TemplateURL and the console's quick-create
    link take: s3.amazonaws.com for us-east-1, the Regional endpoint elsewhere (the global name reaches other
    Regions' buckets only after a redirect that CloudFormation does not follow)."""
    host = f"{bucket}.s3.amazonaws.com" if region == "us-east-1" else f"{bucket}.s3.{region}.amazonaws.com"
    return f"https://{host}/{template_key(version=version)}"


def template_content(*, portal_account_id: str) -> bytes:
    """The current version's template exactly as published: canonical JSON, so the same code and account
    give the same bytes (and sha256) on every machine."""
    document = published_template(portal_account_id=portal_account_id)
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def bucket_policy_document(*, bucket: str) -> dict:
    """Anyone may read the templates (CloudFormation reads them as the customer); nothing else is granted."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AnyoneReadsOnrampRoleTemplates",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/{PREFIX}*",
            }
        ],
    }


def bucket_name_problem(bucket: str) -> str | None:
    """Why a bucket cannot serve the templates, if it cannot: unset, or with a dot (a virtual-hosted HTTPS
    name with a dot does not match S3's wildcard certificate)."""
    if not bucket:
        return "ROLE_TEMPLATE_BUCKET is not set: name the agency's bucket for the role's templates."
    if "." in bucket:
        return f"The bucket {bucket!r} has a dot in its name: its HTTPS URL would not match S3's certificate."
    return None


def role_template_bucket_prepare(*, s3: Any, bucket: str, region: str) -> list[str]:
    """Create the agency's template bucket if it is not there, owner-enforced (no ACLs), with Block Public
    Access relaxed for its policy only and the public-read policy on the templates' prefix. Sentences saying
    what was done. `s3` is a client with the operator's credentials."""
    problem = bucket_name_problem(bucket)
    if problem:
        raise OnrampError(problem, code="InvalidBucketName")
    done = []
    try:
        create: dict[str, Any] = {"Bucket": bucket, "ObjectOwnership": "BucketOwnerEnforced"}
        if region != "us-east-1":
            create["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**create)
        done.append(f"Created the bucket {bucket} in {region}.")
    except ClientError as exc:
        if error_code(exc) != "BucketAlreadyOwnedByYou":
            raise error_translate(exc, doing=f"Creating the bucket {bucket}") from exc
        done.append(f"The bucket {bucket} is already yours.")
    try:
        # Block Public Access before the policy: with BlockPublicPolicy on, S3 refuses a public policy.
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(bucket_policy_document(bucket=bucket)))
    except ClientError as exc:
        raise error_translate(exc, doing=f"Opening {bucket}/{PREFIX} to readers") from exc
    done.append(f"Anyone may read s3://{bucket}/{PREFIX}* (ACLs blocked; nothing else granted).")
    return done


@dataclass(frozen=True)
class Published:
    version: int
    url: str
    sha256: str
    uploaded: bool  # False: the same content was already there


def _object_read(*, s3, bucket: str, key: str) -> bytes | None:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            return None
        raise error_translate(exc, doing=f"Reading s3://{bucket}/{key}") from exc


def _conflict(*, version: int, where: str, sha: str, theirs: str) -> TemplateConflict:
    return TemplateConflict(
        f"Template version {version} was published ({where}) with different content (sha256 {theirs[:12]}…, "
        f"this Onramp's is {sha[:12]}…): a published version is never changed. A changed template needs a new "
        "ROLE_TEMPLATE_VERSION.",
        code="TemplateConflict",
    )


def role_template_publish(*, s3: Any, bucket: str, region: str, portal_account_id: str, actor_label: str) -> Published:
    """Publish the current version's template unless it is there: upload it if missing (a conditional write,
    so two operators cannot both write a version), record its content and sha256 beside the version, audit it.
    Refuses (TemplateConflict) when the version was published with different content, in the bucket or in
    Onramp's records."""
    problem = bucket_name_problem(bucket)
    if problem:
        raise OnrampError(problem, code="InvalidBucketName")
    version, key = ROLE_TEMPLATE_VERSION, template_key()
    content = template_content(portal_account_id=portal_account_id)
    sha = hashlib.sha256(content).hexdigest()
    recorded = PublishedTemplate.objects.filter(version=version).first()
    if recorded is not None and recorded.sha256 != sha:
        raise _conflict(version=version, where="Onramp's records", sha=sha, theirs=recorded.sha256)
    there = _object_read(s3=s3, bucket=bucket, key=key)
    uploaded = False
    if there is None:
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=content, ContentType="application/json", IfNoneMatch="*")
            uploaded = True
        except ClientError as exc:
            if error_code(exc) != "PreconditionFailed":
                raise error_translate(exc, doing=f"Uploading s3://{bucket}/{key}") from exc
            there = _object_read(s3=s3, bucket=bucket, key=key)  # another operator was first: compare theirs
    if there is not None and there != content:
        theirs = hashlib.sha256(there).hexdigest()
        raise _conflict(version=version, where=f"s3://{bucket}/{key}", sha=sha, theirs=theirs)
    url = template_url(bucket=bucket, region=region)
    if recorded is None:
        try:
            with transaction.atomic():
                PublishedTemplate.objects.create(
                    version=version,
                    content=content.decode(),
                    sha256=sha,
                    bucket=bucket,
                    key=key,
                    url=url,
                    published_by=actor_label,
                )
                audit_record(
                    action="role_template.published",
                    actor_label=actor_label,
                    target=url,
                    details={"version": version, "sha256": sha, "uploaded": uploaded},
                )
        except IntegrityError:
            pass  # recorded meanwhile by another publish of the same content (its sha was compared above)
    return Published(version=version, url=url, sha256=sha, uploaded=uploaded)


def published_template_url(*, version: int = ROLE_TEMPLATE_VERSION) -> str | None:
    """The URL of a version's published template, from Onramp's records; None if it was never published."""
    return PublishedTemplate.objects.filter(version=version).values_list("url", flat=True).first()


def quick_create_url(*, template_url: str, region: str, external_id: str, stack_name: str = STACK_NAME) -> str:
    """The CloudFormation console's quick-create link (CloudFormation User Guide, "Create quick-create links for
    stacks"): the console's create-review page in `region`, its query in the fragment: `templateURL` (an S3 URL),
    `stackName`, and each template parameter as `param_<Name>` (the console ignores NoEcho ones, hence the
    external id is a plain parameter). The person opening it still ticks the IAM acknowledgement, since the
    template names its role (CAPABILITY_NAMED_IAM); no link can tick it for them."""
    query = urlencode(
        {"templateURL": template_url, "stackName": stack_name, "param_ExternalId": external_id}, quote_via=quote
    )
    console = f"https://{region}.console.aws.amazon.com/cloudformation/home"
    return f"{console}?{urlencode({'region': region})}#/stacks/create/review?{query}"

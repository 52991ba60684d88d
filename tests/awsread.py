"""Reading the sandbox back with plain boto3, independently of Onramp's code, as the harness's administrator
of the account (sandbox/strict.py: the set-up identity's SandboxAdmin role), whom the strict rules
do not apply to."""

import boto3

from sandbox.controller import admin_session


def account_session(sandbox_url: str, account_id: str, region: str = "us-east-1") -> "AccountReader":
    return AccountReader(admin_session(sandbox_url, account_id), sandbox_url, region)


class AccountReader:
    def __init__(self, session: boto3.Session, url: str, region: str):
        self.session, self.url, self.region = session, url, region

    def client(self, service: str, region: str | None = None):
        return self.session.client(service, endpoint_url=self.url, region_name=region or self.region)

    @property
    def iam(self):
        return self.client("iam")

    @property
    def s3(self):
        return self.client("s3")

    def ecr(self, region: str):
        return self.client("ecr", region)

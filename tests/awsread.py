"""Reading the sandbox back with plain boto3, independently of Onramp's code."""

import boto3


def account_session(sandbox_url: str, account_id: str, region: str = "us-east-1") -> "AccountReader":
    sts = boto3.client("sts", endpoint_url=sandbox_url, region_name=region, aws_access_key_id="testing",
                       aws_secret_access_key="testing")  # fmt: skip
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account_id}:role/Reader", RoleSessionName="test-reader")[
        "Credentials"
    ]
    session = boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                            aws_session_token=creds["SessionToken"])  # fmt: skip
    return AccountReader(session, sandbox_url, region)


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

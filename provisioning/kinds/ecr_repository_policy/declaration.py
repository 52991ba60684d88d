"""The repository's policy: none. Onramp's spec gives the repository no resource-based policy (who may pull or push
is IAM's to say, in the account), so a repository policy someone added by hand (another account allowed to pull,
say) is drift: reported, and removed by a repair."""

from provisioning.kinds.ecr_repository import declaration as ecr_repository
from provisioning.registry import ApiCall, Difference, StepKind, ops, shown

KEY = "ecr.repository_policy"
ORDER = 120


def delete_repository_policy(name: str) -> ApiCall:
    return ApiCall("ecr", "DeleteRepositoryPolicy", {"repositoryName": name})


def compare(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    """`seen["policy"]`: the repository's policy document, None when it has none (what the spec wants)."""
    policy = seen["policy"]
    if policy is None:
        return []
    statements = policy.get("Statement", []) if isinstance(policy, dict) else []
    count = len(statements) if isinstance(statements, list) else 1
    return [Difference("repository policy", "none", f"{count} statement(s), made by hand: {shown(policy)}")]


KIND = StepKind(
    key=KEY,
    branch="ecr",
    title=lambda p: f"No repository policy on {p['repository']} (access through IAM only)",
    instances=lambda spec: [{"repository": spec.ecr_repository}],
    after=(ecr_repository.KEY,),
    part_of=ecr_repository.KEY,
    # A new repository has no policy: the way that creates it sends nothing. A repair of one added by hand
    # sends DeleteRepositoryPolicy (aws.py).
    operations=ops("ecr", "GetRepositoryPolicy", "DeleteRepositoryPolicy"),
    compare=compare,
    absent=("RepositoryNotFoundException", "RepositoryPolicyNotFoundException"),
    noun="repository setting",
    found_words=lambda identity, seen: (
        "The repository has a policy of its own: deleted by the run."
        if seen.get("policy")
        else "The repository has no policy."
    ),
)
KINDS = (KIND,)

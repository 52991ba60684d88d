"""Spec -> the steps of an onboarding, what runs in parallel, and the same plan as AWS CLI commands.

No I/O here: the preview page and the worker share it. Everything about a step comes from its
declaration (provisioning/kinds/<kind>/declaration.py); the CLI transcript is rendered from the very ApiCall objects
the steps send.
"""

import json
import shlex
from dataclasses import dataclass, field, replace

from provisioning.kinds import REGISTRY
from provisioning.kinds.iam_access_key import declaration as access_key
from provisioning.kinds.s3_bucket import declaration as s3_bucket
from provisioning.kinds.team_member import declaration as team_member
from provisioning.registry import (
    APPROVER_TAG,
    BRANCHES,
    GENERATED,
    ONRAMP_PATH,
    ApiCall,
    Registry,
    StepKind,
    assume_role_call,
    counted,
    session_tag_value,
    user_outside_sentence,
    words_of,
)
from provisioning.spec import Spec
from provisioning.vocabulary import OffboardMode

# The AWS CLI's name for a service, where it is not boto3's.
_CLI_SERVICES = {"s3": "s3api"}
RUN_SESSION_NAME = "onramp-run-{run_id}"


@dataclass(frozen=True)
class PlannedStep:
    key: str
    kind: str
    title: str
    branch: str
    depends_on: tuple[str, ...]
    params: dict
    documents: dict
    calls: tuple[ApiCall, ...]
    cli: tuple[str, ...]  # the calls as AWS CLI commands
    # How the plan runs it, beside its parameters (StepRun.flags): "known", the read saw its resource (the step
    # changes it in place, StepContext.known); "ends", the ledger rows a removal's last step ends; "read", the
    # preflight's account read to check the account against (StepContext.read).
    flags: dict = field(default_factory=dict)


def cli_line(call: ApiCall, *, region: str = "") -> str:
    """One call as an AWS CLI command: the same operation and parameters. Structures are given as JSON,
    which the CLI accepts for any structured parameter; a value starting with "-" (or a generated one,
    which may) is joined to its option with "=", so the CLI never reads it as an option."""
    words = ["aws", _CLI_SERVICES.get(call.service, call.service), words_of(call.operation, "-")]
    for name, value in call.params.items():
        option = "--" + words_of(name, "-")
        if value is True:
            words.append(option)
        elif value is False:
            words.append("--no-" + option[2:])
        else:
            text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            words += [f"{option}={text}"] if text.startswith("-") or text == GENERATED else [option, text]
    if region and call.service != "iam":  # IAM is global
        words += ["--region", region]
    return " ".join(shlex.quote(word) for word in words)


def _depends_on(kind: StepKind, keys_of: dict[str, list[str]], registry: Registry) -> tuple[str, ...]:
    """The steps of the kinds this one waits for; a kind with no step in this plan passes its own wait on."""
    keys: list[str] = []
    for after in registry.waits(kind):
        if after in keys_of:
            keys += keys_of[after]
        else:
            keys += _depends_on(registry.kind_of(after), keys_of, registry)
    return tuple(dict.fromkeys(keys))


def plan_build(spec: Spec, *, registry: Registry = REGISTRY) -> list[PlannedStep]:
    """Every step in order: preflight first, then each branch as a chain, the branches in parallel."""
    steps: list[PlannedStep] = []
    keys_of: dict[str, list[str]] = {}
    for kind in registry.kinds:
        for params in kind.instances(spec):
            key = kind.step_key(params)
            calls = tuple(kind.calls(params))
            steps.append(
                PlannedStep(
                    key=key,
                    kind=kind.key,
                    title=kind.title(params)[:300],
                    branch=kind.branch,
                    depends_on=_depends_on(kind, keys_of, registry),
                    params=params,
                    documents=kind.documents(params),
                    calls=calls,
                    cli=tuple(cli_line(call, region=spec.region) for call in calls),
                )
            )
            keys_of.setdefault(kind.key, []).append(key)
    return steps


def plan_branches(steps: list[PlannedStep]) -> list[tuple[str, list[PlannedStep]]]:
    """Steps grouped by branch, in the order the branches first appear, for the preview."""
    grouped: dict[str, list[PlannedStep]] = {}
    for step in steps:
        grouped.setdefault(step.branch, []).append(step)
    return [(BRANCHES.get(name, name.title()), members) for name, members in grouped.items()]


def plan_transcript(spec: Spec, steps: list[PlannedStep], *, source_identity: str, approver: str = "") -> str:
    """The plan as the AWS CLI commands a person would type, starting with reaching the account (with the
    `approver`'s name as the session tag onramp-approver, for an approved plan)."""
    if spec.uses_role:
        call = assume_role_call(
            role_arn=spec.role_arn,
            external_id=spec.external_id,
            session_name=RUN_SESSION_NAME.format(run_id="<run id>"),
            source_identity=source_identity,
            tags={APPROVER_TAG: session_tag_value(approver)} if approver else None,
        )
        lines = [
            "# Reach the customer's account: export the AccessKeyId, SecretAccessKey and SessionToken it returns",
            "# as AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN for the commands below.",
            cli_line(call, region=spec.region),
        ]
    else:
        lines = [
            "# Reach the customer's account with their IAM user's keys in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
        ]
    lines.append(cli_line(ApiCall("sts", "GetCallerIdentity", {}), region=spec.region))
    for step in steps:
        if step.cli:
            lines += [f"# {step.title}", *step.cli]
    return "\n".join(lines)


# --- Plans as differences -----------------------------------------------------------------------
# Every plan, a new customer's too, is the difference between the spec, the ledger (what Onramp made or
# adopted) and a read of the account: each resource is created, adopted (it is there and the ledger does not
# hold it: taken over only once an Admin approves), changed, kept, removed (only what Onramp created, or what
# the tech lead ticked) or released (forgotten, left as is). Nothing is taken over unseen.


class Action:
    CREATE = "create"
    ADOPT = "adopt"
    CHANGE = "change"
    KEEP = "keep"
    REMOVE = "remove"
    RELEASE = "release"
    ORDER = (CREATE, ADOPT, CHANGE, REMOVE, RELEASE, KEEP)


@dataclass(frozen=True)
class PlanItem:
    key: str  # the step it runs as (create, change), or "<kind>:<identity>" for what the ledger holds
    kind: str
    identity: str
    title: str
    action: str
    params: dict
    differences: tuple[dict, ...] = ()
    resource: int | None = None  # the ledger row
    origin: str = ""  # "created" or "adopted", for what the ledger holds
    holds_data: bool = False  # a bucket with objects, a repository with images: deleted only if its name is typed
    note: str = ""
    holdings: dict = field(default_factory=dict)  # a bucket's objects and bytes, as the read counted them

    def to_json(self) -> dict:
        return {**self.__dict__, "differences": list(self.differences)}


def _planned_item(step: PlannedStep, seen: dict | None, previous: dict | None, registry: Registry) -> PlanItem:
    kind = registry.kind_of(step.key)
    record = kind.resource
    identity = str(step.params.get(record.identity_param, "")) if record else ""
    if seen is None:
        return PlanItem(step.key, kind.key, identity, step.title, Action.CREATE, step.params)
    differences = tuple(d.to_json() for d in kind.compare(step.params, seen, previous))
    action = Action.CHANGE if any(d["repairable"] for d in differences) else Action.KEEP
    return PlanItem(step.key, kind.key, identity, step.title, action, step.params, differences)


def _owner(step: PlannedStep, registry: Registry) -> tuple[str, str] | None:
    """The (kind, identity) of the ledger's resource a step makes or sets (None: no resource, the preflight)."""
    kind = registry.kind_of(step.key)
    # A setting of a resource (a bucket's CORS, a repository's lifecycle policy) belongs to that resource's kind.
    owner = registry.kind_of(kind.part_of) if kind.part_of else kind
    if owner.resource is None:
        return None
    return owner.key, str(step.params.get(owner.resource.identity_param, ""))


def _found(kind: StepKind, params: dict, seen: dict | None) -> bool:
    """Whether the read found the resource there: a user's key list with no key, or an account with no alias
    (or another one), is nothing to adopt (the kind's `found`)."""
    if seen is None:
        return False
    return kind.found(params, seen) if kind.found is not None else True


def found_sentence(kind: StepKind, identity: str, seen: dict) -> str:
    """What the read found of a resource the plan would take over, in words (users in detail)."""
    found = seen.get("found")
    if found is None:
        words = kind.found_words
        return words(identity, seen) if words is not None else f"{identity} already exists in the account."
    groups = f"in groups {', '.join(found['groups'])}" if found["groups"] else "in no group"
    policies = ", ".join(found["attached"]) or "no managed policy"
    inline = f"; inline policies {', '.join(found['inline'])}" if found["inline"] else ""
    console = "a console password" if found["console"] else "no console password"
    return (
        f"user {identity} exists (path {found['path']}): {counted(found['keys'], 'access key')}, {console}, "
        f"{groups}; attached {policies}{inline}."
    )


def _adopted_item(step: PlannedStep, identity: str, seen: dict, registry: Registry) -> PlanItem:
    """A resource the read found there that the ledger does not hold: adopted, with what was found, what the
    run would change on it (differences), and why it cannot be adopted (a user outside Onramp's path)."""
    kind = registry.kind_of(step.key)
    differences = tuple(d.to_json() for d in kind.compare(step.params, seen, None))
    note = found_sentence(kind, identity, seen)
    if (seen.get("found") or {}).get("path", ONRAMP_PATH) != ONRAMP_PATH:
        note = f"{note} {user_outside_sentence(identity)}"
    return PlanItem(step.key, kind.key, identity, step.title, Action.ADOPT, step.params, differences, note=note)


def _wanted(spec: Spec, registry: Registry) -> set[tuple[str, str]]:
    """The (kind, identity) of every resource the spec asks for."""
    wanted = set()
    for step in plan_build(spec, registry=registry):
        kind = registry.kind_of(step.key)
        if kind.resource is not None:
            wanted.add((kind.key, str(step.params.get(kind.resource.identity_param, ""))))
    return wanted


def plan_orphans(*, spec: Spec, ledger: list[dict], registry: Registry = REGISTRY) -> list[dict]:
    """The ledger's resources the spec no longer asks for."""
    wanted = _wanted(spec, registry)
    return [row for row in ledger if (row["kind"], row["identity"]) not in wanted]


def plan_difference(
    *,
    spec: Spec,
    ledger: list[dict],
    seen: dict[str, dict | None],
    registry: Registry = REGISTRY,
) -> list[PlanItem]:
    """Every resource of the spec and of the ledger, with what to do about it. `ledger`: the customer's
    present resources ({"id", "kind", "identity", "name", "origin", "params"}); `seen`: what a read of the
    account found, by step key for the spec's steps and by "<kind>:<identity>" for the ledger's others."""
    held = {(row["kind"], row["identity"]): row for row in ledger}
    bucket = getattr(spec, "bucket", "")
    items = []
    for step in plan_build(spec, registry=registry)[1:]:  # preflight always runs; it is no resource
        kind = registry.kind_of(step.key)
        previous = None
        if kind.resource is not None:
            identity = str(step.params.get(kind.resource.identity_param, ""))
            previous = (held.get((kind.key, identity)) or {}).get("params")
        owner = _owner(step, registry)
        if owner is not None and owner not in held:  # not Onramp's: created, or adopted once an Admin approves
            found = seen.get(step.key)
            if found is not None and _found(kind, step.params, found):
                items.append(_adopted_item(step, owner[1], found, registry))
            else:
                items.append(_planned_item(step, None, previous, registry))
            continue
        items.append(_planned_item(step, seen.get(step.key), previous, registry))
    for row in plan_orphans(spec=spec, ledger=ledger, registry=registry):
        kind = registry.kind_of(row["kind"])
        found = seen.get(f"{row['kind']}:{row['identity']}") or {}
        items.append(
            PlanItem(
                f"{row['kind']}:{row['identity']}",
                row["kind"],
                row["identity"],
                f"{kind.resource.label} {row['name']}" if kind.resource else row["name"],
                Action.REMOVE if row["origin"] == "created" else Action.RELEASE,
                {**row["params"], "name": row["name"]},
                resource=row["id"],
                origin=row["origin"],
                holds_data=bool(found.get("holds_data")),
                holdings={k: found[k] for k in ("objects", "bytes", "more") if k in found},
                note=_renamed_note(row["name"], bucket) if row["kind"] == s3_bucket.KEY and bucket else "",
            )
        )
    return sorted(items, key=lambda item: Action.ORDER.index(item.action))


def _renamed_note(old: str, new: str) -> str:
    """What renaming the bucket means, said in the plan: AWS cannot rename a bucket, so the new one is empty."""
    if old == new:
        return ""
    return (
        f"The bucket is renamed: {new} is a new, empty bucket. Onramp copies no object from {old}. The app's "
        f"bucket setting (its environment variable naming the bucket) must change from {old} to {new}."
    )


def plan_decide(items: list[dict], *, delete: set[int], typed: dict[int, str], offboard: str = "") -> list[dict]:
    """The tech lead's decisions applied to a read's items: adopted resources ticked for deletion are removed
    rather than released; a resource that holds data (a bucket's objects, a repository's images) is removed
    only when its name was typed. Otherwise it stays in the account: released (no longer Onramp's, so no
    drift check reports it as "gone from the desired state, still there"), or, in an offboarding, kept
    present in the ledger so that the record handed over lists it and a reactivated customer's plan finds it."""
    decided = []
    for item in items:
        item = {**item, "params": dict(item["params"])}
        if item["action"] == Action.RELEASE and item["resource"] in delete:
            item["action"] = Action.REMOVE
        if item["action"] == Action.REMOVE and item["holds_data"]:
            if typed.get(item["resource"], "").strip() == item["params"]["name"]:
                item["params"]["confirmed"] = True
            elif offboard:
                item["action"] = Action.KEEP
                item["note"] = "Kept: it holds data, and its name was not typed."
            else:
                item["action"] = Action.RELEASE
                released = (
                    "Kept in the account and released: it holds data and its name was not typed. It is no longer "
                    "Onramp's: delete it yourself once nothing needs it."
                )
                item["note"] = f"{item['note']} {released}".strip()
        decided.append(item)
    return decided


# --- Offboarding: a desired state that wants less -----------------------------------------------
# The agency leaves: Onramp wants what the customer's app needs and no team user, so the team users it made
# are removed and the rest stays, handed over. Decommission: Onramp wants nothing, so everything it made is
# removed (what holds data only once its name is typed). Either way what stays is left exactly as it is.


def plan_registry(offboard: str = "", registry: Registry = REGISTRY) -> Registry:
    """The declarations a plan is made with: all of them, or an offboarding's desired state that wants less."""
    if not offboard:
        return registry
    if offboard == OffboardMode.LEAVE:
        return registry.wanting(kind.key for kind in registry.kinds if kind.key != team_member.KEY)
    return registry.wanting(())


def plan_offboard(items: list[PlanItem]) -> list[PlanItem]:
    """An offboarding creates and changes nothing: what stays is kept as the account has it."""
    return [
        replace(item, action=Action.KEEP, differences=(), note=_LEFT_AS_IS[item.action])
        if item.action in _LEFT_AS_IS
        else item
        for item in items
    ]


_LEFT_AS_IS = {
    Action.CREATE: "Not in the account: an offboarding creates nothing.",
    Action.ADOPT: "Not Onramp's: an offboarding adopts nothing, and leaves it as it is.",
    Action.CHANGE: "Left as the account has it: an offboarding changes nothing that stays.",
}


def _kept_waits(step_key: str, full: dict[str, PlannedStep], chosen: set[str]) -> list[str]:
    """What a chosen step waits for among the chosen ones: a step left out passes its own waits on."""
    keys: list[str] = []
    for dep in full[step_key].depends_on:
        keys += [dep] if dep in chosen else _kept_waits(dep, full, chosen)
    return list(dict.fromkeys(keys))


def _removal_steps(
    item: dict, items: list[dict], after: tuple[str, ...], region: str, registry: Registry
) -> list[PlannedStep]:
    """The chain of steps that removes one resource; its last step ends the ledger rows it removes (the
    resource, and a removed user's access keys)."""
    chain = registry.kind_of(item["kind"]).removal
    named = ("name", "arn", "confirmed", "user") if item["kind"] == access_key.KEY else ("name", "arn", "confirmed")
    params = {key: item["params"][key] for key in named if key in item["params"]}
    ends = [item["resource"]] + [
        other["resource"]
        for other in items
        if other["action"] == Action.REMOVE and other["kind"] == access_key.KEY and other["identity"] == params["name"]
    ]
    steps, waits = [], after
    for index, removal_key in enumerate(chain):
        kind = registry.kind_of(removal_key)
        calls = tuple(kind.calls(params))
        key = kind.step_key(params)
        steps.append(
            PlannedStep(
                key, kind.key, kind.title(params)[:300], kind.branch, waits, params, {}, calls,
                tuple(cli_line(call, region=region) for call in calls),
                {"ends": ends} if index == len(chain) - 1 else {},
            )
        )  # fmt: skip
        waits = (key,)
    return steps


def plan_run_steps(*, spec: Spec, items: list[dict], read_id: str, registry: Registry = REGISTRY) -> list[PlannedStep]:
    """A difference plan's steps: preflight (which checks the account is still as read), each resource to
    create or change, then the removals, after everything else."""
    full = {step.key: step for step in plan_build(spec, registry=registry)}
    applies = {item["key"] for item in items if item["action"] in (Action.CREATE, Action.ADOPT, Action.CHANGE)}
    preflight = next(iter(full.values()))
    chosen = {preflight.key, *applies}
    steps = [PlannedStep(**{**preflight.__dict__, "flags": {"read": read_id}})]
    changes = {item["key"] for item in items if item["action"] in (Action.ADOPT, Action.CHANGE)}
    for key, step in full.items():
        if key in applies:
            # A resource to adopt or change is there (the read saw it): its step reads it and changes it in place.
            flags = {"known": True} if key in changes else {}
            waits = tuple(_kept_waits(key, full, chosen))
            steps.append(PlannedStep(**{**step.__dict__, "depends_on": waits, "flags": flags}))
    after = tuple(s.key for s in steps)
    removals = [i for i in items if i["action"] == Action.REMOVE and registry.kind_of(i["kind"]).removal]
    # A user's removal deletes its access keys (and ends their ledger rows): a key has a step of its own only
    # when its user stays (released, or kept).
    users_removed = {i["params"]["name"] for i in removals if i["kind"] in registry.user_kinds()}
    removals = [i for i in removals if not (i["kind"] == access_key.KEY and i["identity"] in users_removed)]
    removals.sort(key=lambda i: -_depth(registry.kind_of(i["kind"]), registry))  # listed in an order they can run
    ends = {i["key"]: _removal_end(i, registry) for i in removals}
    for item in removals:
        # Removed the other way round from making: a group after its user, a user after its policy.
        kind = registry.kind_of(item["kind"])
        later = [ends[o["key"]] for o in removals if _comes_after(registry.kind_of(o["kind"]), kind.key, registry)]
        steps += _removal_steps(item, items, after + tuple(later), spec.region, registry)
    return steps


def _depth(kind: StepKind, registry: Registry) -> int:
    """How many kinds deep a kind waits when made: what waits longer is removed sooner."""
    return max((1 + _depth(registry.kind_of(after), registry) for after in kind.after), default=0)


def _comes_after(kind: StepKind, other: str, registry: Registry) -> bool:
    """Whether `kind` waits for the kind `other` when made, directly or through the kinds it waits for."""
    return any(after == other or _comes_after(registry.kind_of(after), other, registry) for after in kind.after)


def _removal_end(item: dict, registry: Registry) -> str:
    """The key of the last step of the chain that removes an item's resource."""
    last = registry.kind_of(registry.kind_of(item["kind"]).removal[-1])
    return last.step_key({"name": item["params"]["name"]})


ACTION_TITLES = {
    Action.CREATE: "Create",
    Action.ADOPT: "Adopt (already in the account, not Onramp's: an Admin approves the takeover)",
    Action.CHANGE: "Change",
    Action.REMOVE: "Remove",
    Action.RELEASE: "Release (leave it in the account, forgotten by Onramp)",
    Action.KEEP: "Keep as it is",
}


# An offboarding's words for what stays: the customer's from now on.
OFFBOARD_TITLES = {
    **ACTION_TITLES,
    Action.RELEASE: "Release (leave it in the account, the customer's from now on)",
    Action.KEEP: "Stays, handed over to the customer",
}


def plan_groups(items: list[dict], *, offboard: str = "") -> list[tuple[str, str, list[dict]]]:
    """A read's items grouped by action, in the order a reader wants them: (action, title, items)."""
    titles = OFFBOARD_TITLES if offboard else ACTION_TITLES
    return [
        (action, titles[action], [item for item in items if item["action"] == action])
        for action in Action.ORDER
        if any(item["action"] == action for item in items)
    ]

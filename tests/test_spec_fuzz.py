"""Bad input, generated: the spec validator, the onboarding form and `manage.py onboard` answer
anything with validation errors (SpecError, form errors, CommandError), never another exception."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioning.forms import OnboardingForm, TeamFormSet, onboarding_validate
from provisioning.spec import _FIELDS, Spec, SpecError, spec_parse
from tests.conftest import spec_data

ROOT = Path(__file__).resolve().parent.parent
FUZZ = settings(
    max_examples=150,
    deadline=None,
    # CI replays the same examples every run (reproducible); a developer's run explores new ones.
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Anything JSON can hold (and a little more): huge ints past Python's int->str limit, NaN, NUL bytes.
# Numbers past Python's int->str limit (4300 digits): JSON files can hold them, json.dumps cannot write them.
huge = st.integers(4301, 6000).map(lambda digits: 10**digits) | st.just(-1).map(lambda sign: sign * 10**4400)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**63, float("nan"), float("inf"), 1e308]),
    st.floats(allow_nan=True),
    st.text(),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=30).map(lambda s: s * 200),
    st.sampled_from(["\x00", "acme\x00app", "\ud7ff", "🦄" * 70, " " * 3000, "a" * 70_000, "1" * 12]),
)

# These tests are about other things than approvals: new customers' plans start without a second person.
pytestmark = pytest.mark.usefixtures("no_approvals")


def _nested(leaves):
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=8,
    )


json_values = _nested(json_scalars)
values = _nested(json_scalars | huge)
field_names = st.sampled_from(sorted(_FIELDS)) | st.text(max_size=20)
member_keys = st.sampled_from(["email", "role", "policy", "console"]) | st.text(max_size=10)


def _parse_or_error(data) -> Spec | None:
    try:
        return spec_parse(data)
    except SpecError as exc:
        assert exc.errors and all(isinstance(m, str) for msgs in exc.errors.values() for m in msgs)
        return None


@FUZZ
@given(data=values)
def test_spec_parse_takes_any_value(data):
    assert _parse_or_error(data) is None or isinstance(data, dict)


@FUZZ
@given(
    replaced=st.dictionaries(field_names, values, max_size=5),
    missing=st.sets(st.sampled_from(sorted(_FIELDS))),
    team=st.lists(st.dictionaries(member_keys, values, max_size=5) | values, max_size=4),
)
def test_spec_parse_takes_any_field_value(replaced, missing, team):
    data = {**spec_data(team=team), **replaced}
    for name in missing:
        data.pop(name, None)
    spec = _parse_or_error(data)
    if spec is not None:
        # Whatever it accepted is text the database can store (no NUL) and round-trips through the schema.
        assert "\x00" not in json.dumps(spec.to_json())
        assert spec_parse(spec.to_json()) == spec


def test_a_huge_number_is_a_validation_error_not_a_crash():
    with pytest.raises(SpecError) as caught:
        spec_parse({**spec_data(), "account_id": 10**5000, "team": [{"email": 10**5000}]})
    assert "account_id" in caught.value.errors
    assert "team.0.email" in caught.value.errors


def test_a_nul_character_is_refused():
    """PostgreSQL cannot store U+0000 in text or jsonb: the spec refuses it with a message."""
    with pytest.raises(SpecError) as caught:
        spec_parse(spec_data(customer="Acme\x00Corp"))
    assert "customer" in caught.value.errors


form_text = st.one_of(st.text(max_size=80), st.sampled_from(["\x00", "a" * 5000, "1" * 12, "🦄", "-1", "on"]))
FORM_FIELDS = list(OnboardingForm.base_fields)
MEMBER_FIELDS = ["email", "role", "policy", "console"]


def _post_data(fields: dict, members: list[dict], management: dict) -> dict:
    data = dict(fields)
    for index, member in enumerate(members):
        for name, value in member.items():
            data[f"team-{index}-{name}"] = value
    data.update({f"team-{k}": v for k, v in management.items()})
    return data


def _form_data(form_counts):
    return st.builds(
        _post_data,
        st.dictionaries(st.sampled_from(FORM_FIELDS) | st.text(max_size=10), form_text, max_size=len(FORM_FIELDS)),
        st.lists(st.dictionaries(st.sampled_from(MEMBER_FIELDS), form_text, max_size=4), max_size=3),
        st.dictionaries(
            st.sampled_from(["TOTAL_FORMS", "INITIAL_FORMS", "MIN_NUM_FORMS", "MAX_NUM_FORMS"]),
            st.one_of(form_text, form_counts.map(str)),
        ),
    )


form_data = _form_data(st.integers(-5, 10**6))
# The view renders every form the formset builds: small counts keep it fast (the form test covers big ones).
view_data = _form_data(st.integers(-5, 60))


@pytest.mark.django_db
@FUZZ
@given(data=form_data)
def test_onboarding_form_takes_any_post(data):
    form = OnboardingForm(data)
    formset = TeamFormSet(data, prefix="team")
    spec = onboarding_validate(form, formset)
    if spec is None:
        assert form.errors or formset.non_form_errors() or any(f.errors for f in formset.forms)
    else:
        assert isinstance(spec, Spec)


@pytest.mark.django_db
@settings(FUZZ, max_examples=60)
@given(data=view_data)
def test_onboard_view_answers_any_post_with_the_form(client, alice, data):
    client.force_login(alice)
    response = client.post("/onboard/", data)
    # 200: the form again, with its errors; 302: valid, on to the preview. Never a 500.
    assert response.status_code in (200, 302)
    if response.status_code == 200:
        assert b'id="onboard-form"' in response.content


@pytest.mark.django_db
@settings(FUZZ, max_examples=100)
@given(content=st.one_of(json_values.map(lambda v: json.dumps(v, allow_nan=True)), st.binary(max_size=200), st.text()))
def test_onboard_command_takes_any_file(alice, tmp_path_factory, content):
    path = tmp_path_factory.mktemp("spec") / "spec.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    try:
        call_command("onboard", "--spec", str(path), "--user", "alice", stdout=open(os.devnull, "w"))  # noqa: SIM115
    except CommandError as exc:
        assert str(exc)


@pytest.mark.django_db
@settings(FUZZ, max_examples=100)
@given(data=st.dictionaries(field_names, json_values, max_size=6))
def test_onboard_command_takes_any_spec_object(alice, tmp_path_factory, data):
    path = tmp_path_factory.mktemp("spec") / "spec.json"
    path.write_text(json.dumps({**spec_data(), **data}, allow_nan=True), encoding="utf-8", errors="surrogatepass")
    try:
        call_command("onboard", "--spec", str(path), "--user", "alice", stdout=open(os.devnull, "w"))  # noqa: SIM115
    except CommandError as exc:
        assert str(exc)


@pytest.mark.parametrize(
    "content",
    [
        b"customer: Acme\n",
        b"{'customer': 'Acme'}",
        b"\xff\xfe\x00garbage",
        b"",
        b'{"account_id": ' + b"1" * 5000 + b"}",
    ],
)
def test_a_spec_file_that_is_not_json_gets_one_clear_line(tmp_path, content):
    """The real command, as a tech lead runs it: one line on stderr, no traceback, exit status 1."""
    path = tmp_path / "spec.json"
    path.write_bytes(content)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings_test"}
    done = subprocess.run(
        [sys.executable, "manage.py", "onboard", "--spec", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("CommandError: ") and "is not valid JSON" in lines[0]
    assert "Traceback" not in done.stderr


def test_a_spec_path_that_is_a_directory_is_a_command_error(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("onboard", "--spec", str(tmp_path))

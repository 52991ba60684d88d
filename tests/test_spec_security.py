"""The spec's rules that an attacker leaned on: the app origin is a URL of a scheme, a valid host name and
an optional port, nothing else; the role ARN, group name, external id and account id are ASCII, as
AWS's own patterns."""

import pytest

from provisioning.admin import CustomerAdminForm
from provisioning.spec import SpecError, spec_parse
from tests.conftest import form_data, spec_data


def _errors(**overrides) -> dict[str, list[str]]:
    with pytest.raises(SpecError) as refused:
        spec_parse(spec_data(**overrides))
    return refused.value.errors


@pytest.mark.parametrize(
    "origin",
    [
        "https://*",
        "https://*.com",
        "https://*.acme.example.com",
        "https://a b.com",
        "https://acme.example.com?",
        "https://acme.example.com#",
        "https://acme.example.com/?",
        "https://acme .example.com",
        "https://acme.exa\tmple.com",
        "https://-acme.example.com",
        "https://acme_app.example.com",
        "https://acme..example.com",
        "https://" + "a" * 64 + ".example.com",
        "https://1.2.3.4",
        "https://[::1]",
        "https://user:pw@acme.example.com",
        "https://acme.example.com:0",
        "https://acme.example.com:99999",
        "https://acme.example.com\\@evil.example",
    ],
)
def test_an_origin_that_is_not_a_scheme_a_host_name_and_a_port_is_refused(origin):
    assert "app_origin" in _errors(app_origin=origin)


@pytest.mark.parametrize(
    ("origin", "stored"),
    [
        ("https://acme.example.com", "https://acme.example.com"),
        ("https://ACME.example.com/", "https://acme.example.com"),
        ("https://acme.example.com:8443", "https://acme.example.com:8443"),
        ("https://acme.example.com:443", "https://acme.example.com"),  # as a browser sends it in Origin
        ("https://bücher.example", "https://xn--bcher-kva.example"),  # IDNA, as a browser sends it
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ],
)
def test_a_valid_origin_is_stored_as_a_browser_sends_it(origin, stored):
    assert spec_parse(spec_data(app_origin=origin)).app_origin == stored


def test_the_form_refuses_a_wildcard_origin(client, alice):
    client.force_login(alice)
    response = client.post("/onboard/", form_data(app_origin="https://*"))
    assert response.status_code == 200
    assert "The app&#x27;s origin is a scheme and host only" in response.content.decode()


CYRILLIC_A = "\u0410"  # looks like a Latin A
ARABIC_ONE = "\u0661"  # a digit to Python's \d


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("group_name", CYRILLIC_A + "pps"),
        ("role_arn", f"arn:aws:iam::111122223333:role/{CYRILLIC_A}ccess"),
        ("role_arn", f"arn:aws:iam::111122223333:role/p{CYRILLIC_A}th/OnrampAccess"),
        ("external_id", "acme-" + CYRILLIC_A + "-external"),
        ("account_id", ARABIC_ONE * 12),
    ],
)
def test_names_and_ids_are_ascii_as_in_aws_patterns(field, value):
    assert field in _errors(**{field: value})


@pytest.mark.parametrize(
    "name",
    [
        "Acme\nBcc: everyone@agency.example",  # a newline cut the email's subject
        "Acme\rCorp",
        "Acme\tCorp",
        "Acme \x1b[31mCorp\x1b[0m",  # an ANSI escape colours a terminal
        "Acme \u202egnp.exe",  # right-to-left override
        "Acme \u2066Corp\u2069",  # bidirectional isolate
        "Acme\u200bCorp",  # zero-width space
        "Acme\u2028Corp",  # line separator
    ],
)
def test_point_13_a_customer_name_refuses_control_and_bidirectional_characters(name):
    assert _errors(customer=name)["customer"] == [
        "A customer's name cannot contain control characters (line breaks, tabs, terminal escapes) or "
        "invisible formatting ones (bidirectional overrides, zero-width characters)."
    ]


def test_point_13_the_form_and_the_admin_refuse_the_same_names(client, alice):
    """The onboarding form shows the spec's sentence on the new customer's name; the admin's customer form too."""
    client.force_login(alice)
    response = client.post("/onboard/", form_data(new_customer_name="Acme\u202eCorp"))
    assert response.status_code == 200
    assert "invisible formatting ones (bidirectional overrides" in response.content.decode()
    admin_form = CustomerAdminForm(data={"name": "Acme\x1b[2JCorp", "slug": "acme", "aws_account_id": "111122223333"})
    assert not admin_form.is_valid()
    assert "cannot contain control characters" in " ".join(admin_form.errors["name"])


@pytest.mark.parametrize("name", ["Acme Corp", "Société Générale", "株式会社アクメ", "<!channel> & Co"])
def test_point_13_ordinary_names_are_accepted(name):
    assert spec_parse(spec_data(customer=name)).customer == name

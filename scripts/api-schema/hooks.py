"""Checks exsec adds to schemathesis's own (loaded with SCHEMATHESIS_HOOKS).

A secret value must never come back: not the canary value the driver
script seeded, and not a value the generated request itself carried (an
error message echoing a misplaced value would leak it into logs and
terminals) — unless that value also spells a name sent in this run (a
provider, key or path parameter of this request or of any earlier one),
which answers echo by design: a refusal such as `env_name_taken` names
the provider that already holds the key, stored by an earlier request of
the stateful phase, and the generators reuse strings between names and
values.

And half of the generated path parameters name what the driver seeded
(its tenant, app, secret, versions and deploy, from EXSEC_ST_* variables):
random ids only ever reach the 404 of each route, never its logic.
"""

import json
import os

import schemathesis
from hypothesis import strategies as st

CANARY = os.environ["EXSEC_CANARY_VALUE"]
# Values this short are too likely to appear by chance (ids, numbers).
MIN_ECHO_LEN = 8


def _sent_values(case):
    body = case.body
    if isinstance(body, dict):
        value = body.get("value")
        if isinstance(value, str):
            yield value
        for item in body.get("secrets", []) if isinstance(body.get("secrets"), list) else []:
            if isinstance(item, dict) and isinstance(item.get("value"), str):
                yield item["value"]


def _sent_names(case):
    """Names the request carried besides values (path parameters, the
    provider and key of each bulk item): answers echo them by design."""
    for value in (case.path_parameters or {}).values():
        yield str(value)
    body = case.body
    items = body.get("secrets") if isinstance(body, dict) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            for name in ("provider", "key"):
                if isinstance(item.get(name), str):
                    yield item[name]


# Every name sent so far in this run (one process per pass), starting
# with what the driver seeded: a later answer may name what an earlier
# request stored.
NAMES_SENT = {
    name
    for name in (os.environ.get(f"EXSEC_ST_{which}") for which in ("TENANT", "APP", "DEPLOY"))
    if name
} | {"openai", "OPENAI_API_KEY"}


@schemathesis.check
def no_secret_value_in_answers(ctx, response, case):
    # Bytes: a backup is binary (values sealed, so the canary cannot be in
    # it either way).
    raw = response.content or b""
    text = raw.decode("utf-8", "replace")
    if CANARY.encode() in raw:
        raise AssertionError("the seeded secret value came back in an answer")
    NAMES_SENT.update(_sent_names(case))
    for value in _sent_values(case):
        # A value spelling a name sent in this run (generators reuse
        # strings) cannot be told from that name's echo.
        if any(value in name for name in NAMES_SENT):
            continue
        if len(value) >= MIN_ECHO_LEN and value in text:
            # JSON-escaped forms count too.
            raise AssertionError("a submitted secret value came back in the answer")
        escaped = json.dumps(value)[1:-1]
        if len(escaped) >= MIN_ECHO_LEN and escaped != value and escaped in text:
            raise AssertionError("a submitted secret value came back (escaped) in the answer")


def _seeded():
    known = {
        "tenant_id": os.environ.get("EXSEC_ST_TENANT"),
        "app_id": os.environ.get("EXSEC_ST_APP"),
        "deploy_id": os.environ.get("EXSEC_ST_DEPLOY"),
        "provider": "openai",
        "key": "OPENAI_API_KEY",
    }
    return {name: value for name, value in known.items() if value}


@schemathesis.hook
def flatmap_path_parameters(ctx, path_parameters):
    if not path_parameters:
        return st.just(path_parameters)
    real = dict(path_parameters)
    for name, value in _seeded().items():
        if name in real:
            real[name] = value
    if "version" in real:
        # The seeding writes versions 1 and 2 of each secret.
        return st.sampled_from([path_parameters, {**real, "version": 1}, {**real, "version": 2}])
    return st.sampled_from([path_parameters, real])

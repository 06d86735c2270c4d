"""Rule files, their promtool tests and the Alertmanager example, as text: {relative path: content}.

Rules go through the jinja2 templates shipped in the package (sandboxed, StrictUndefined, so a typo in a
template is an error, never an empty string); the tests are data and are dumped as YAML.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from opskit.alerts.model import GENERATED_HEADER, Note, RuleSet
from opskit.alerts.rules import build, health_prefix

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

    from opskit.spec.schema import Spec


def environment() -> SandboxedEnvironment:
    from jinja2 import PackageLoader, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(
        loader=PackageLoader("opskit.alerts", "templates"), undefined=StrictUndefined, autoescape=False,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )
    # a JSON string is a valid YAML double-quoted scalar: every value is quoted, nothing is re-interpreted
    env.filters["q"] = lambda value: json.dumps(str(value), ensure_ascii=False)
    env.filters["indent_block"] = lambda text, width: "\n".join(" " * width + line for line in text.splitlines())
    return env


def render_rules(ruleset: RuleSet) -> dict[str, str]:
    template = environment().get_template("rules.yml.j2")
    return {f.name: template.render(file=f, header=GENERATED_HEADER) for f in ruleset.files}


def render_alertmanager(spec: Spec, *, playbook_url: str | None = None, credentials_file: str | None = None) -> str:
    """The routing config. Alerts with a `playbook` label also go to `opskit playbook serve` (at
    `playbook_url`, default the spec's alerts.routing.playbook_receiver), with its bearer token read from
    `credentials_file` when given (a file, so the token is never in the config or an argv)."""
    from opskit.alerts.promql import window

    prefix = health_prefix(spec)
    routing = spec.alerts.routing
    return environment().get_template("alertmanager.yml.j2").render(
        group_wait=window(routing.group_wait),
        group_interval=window(routing.group_interval),
        repeat_interval=window(routing.repeat_interval),
        page_wait=window(min(10.0, routing.group_wait)),
        page_repeat=window(min(3600.0, routing.repeat_interval)),
        playbook_url=playbook_url or routing.playbook_receiver,
        credentials_file=credentials_file,
        header=GENERATED_HEADER,
        group_by=["alertname", "service", "slo", "sli", "resource", "job"],
        down_alert=f"{prefix}TargetDown",
        down_inhibits=[f"{prefix}MetricsAbsent", f"{prefix}ScrapeFailing"],
        pager_url="http://127.0.0.1:9095/hooks/page",
        ticket_url="http://127.0.0.1:9095/hooks/ticket",
    )


def dump_yaml(doc: Any) -> str:
    import yaml

    return GENERATED_HEADER + "\n" + yaml.safe_dump(doc, sort_keys=False, width=120, allow_unicode=True)


def render_all(spec: Spec) -> tuple[RuleSet, dict[str, str]]:
    """Everything `opskit alerts render` writes, keyed by path relative to the alerts folder."""
    from opskit.alerts.unittests import test_documents, untested

    ruleset = build(spec)
    files = render_rules(ruleset)
    docs = test_documents(spec, ruleset)
    for path, doc in docs.items():
        files[path] = dump_yaml(doc)
    tested = {case["alertname"] for doc in docs.values() for test in doc["tests"]
              for case in test["alert_rule_test"]}
    for t in ruleset.thresholds:
        if t.rule.alert not in tested:
            ruleset.notes.append(Note(f"thresholds[{t.index}] {t.row.key}",
                                      f"no generated unit test ({untested(spec, t)}): write one in alerts/tests/, "
                                      "or alerts test fails its coverage"))
    files["alertmanager.yml"] = render_alertmanager(spec)
    return ruleset, dict(sorted(files.items()))

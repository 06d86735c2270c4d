"""Finding and loading playbook files: strict schema, then the checks that need the whole file
(references, actions, where secrets may flow), every error located as file:line: key.path."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opskit.errors import ConfigError
from opskit.playbooks.providers import get_action
from opskit.playbooks.refs import REF, find_refs
from opskit.playbooks.schema import Playbook
from opskit.spec.loader import Located, file_hash, format_loc, read_located, validate

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "playbooks"


@dataclass(frozen=True)
class LoadedPlaybook:
    playbook: Playbook
    path: Path
    sha: str  # sha256 of the file: a resume refuses when it changed
    located: Located

    @property
    def name(self) -> str:
        return self.playbook.metadata.name


def playbook_dirs() -> list[Path]:
    """Where NAME is looked up: $OPSKIT_PLAYBOOKS, ./playbooks, then the playbooks shipped with opskit."""
    dirs: list[Path] = []
    if os.environ.get("OPSKIT_PLAYBOOKS"):
        dirs.append(Path(os.environ["OPSKIT_PLAYBOOKS"]))
    dirs += [Path("playbooks"), SHIPPED_DIR]
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and all(d.resolve() != o.resolve() for o in out):
            out.append(d)
    return out


def find_playbook(name: str) -> Path:
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") or os.sep in name:
        if candidate.is_file():
            return candidate
        raise ConfigError(f"{name}: " + ("is a folder, not a playbook file" if candidate.is_dir()
                                         else "no such playbook file"))
    for d in playbook_dirs():
        for ext in (".yaml", ".yml"):
            p = d / f"{name}{ext}"
            if p.is_file():
                return p
    known = sorted({p.stem for d in playbook_dirs() for p in d.glob("*.y*ml")})
    import difflib

    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else (f"; playbooks: {', '.join(known)}" if known else "")
    raise ConfigError(f"no playbook named {name!r}{hint}")


def list_playbook_files() -> list[Path]:
    seen: dict[str, Path] = {}
    for d in playbook_dirs():
        for p in sorted(d.glob("*.y*ml")):
            seen.setdefault(p.stem, p)  # earlier directories win, as in find_playbook
    return [seen[k] for k in sorted(seen)]


def load_playbook(name_or_path: str | Path) -> LoadedPlaybook:
    path = find_playbook(str(name_or_path))
    located = read_located(path)
    playbook = validate(Playbook, located)
    problems = static_problems(playbook, located)
    if problems:
        raise ConfigError(f"{path}: {len(problems)} problem(s)", details=problems)
    return LoadedPlaybook(playbook, path, file_hash(path), located)


def static_problems(pb: Playbook, located: Located) -> list[str]:
    problems: list[tuple[int, str]] = []

    def add(loc: tuple[str | int, ...], msg: str) -> None:
        line = located.line_of(loc)
        problems.append((line, f"{located.path}:{line}: {format_loc(loc)}: {msg}"))

    secret = {n for n, s in pb.params.items() if s.secret}
    step_ids = [s.id for s in pb.steps]
    for i, sid in enumerate(step_ids):
        if sid in step_ids[:i]:
            add(("steps", i, "id"), f"step id {sid!r} is already used by steps[{step_ids.index(sid)}]")
    named: list[tuple[tuple[str | int, ...], str | None]] = [
        *((("preconditions", i, "source"), c.source) for i, c in enumerate(pb.preconditions)),
        *((("verify", i, "source"), v.source) for i, v in enumerate(pb.verify))]
    for loc, source in named:
        if source is not None and source not in pb.sources:
            known = ", ".join(sorted(pb.sources)) or "none defined"
            add(loc, f"source {source!r} is not in sources: ({known})")

    def check_refs(value: Any, loc: tuple[str | int, ...], visible_steps: list[str], secret_ok: frozenset[str],
                   where: str) -> None:
        for path, scope, name in find_refs(value):
            full = (*loc, *path)
            if scope == "params":
                if name not in pb.params:
                    add(full, f"unknown parameter ${{params.{name}}}; parameters: {', '.join(pb.params) or 'none'}")
                elif name in secret and (not path or path[0] not in secret_ok):
                    allowed = ", ".join(sorted(secret_ok)) or "nowhere in this action"
                    add(full, f"secret parameter {name!r} may only be passed through {allowed} ({where}); "
                              "secrets never go into argv, URLs or queries")
            else:
                step = name.split(".", 1)[0]
                if "." not in name:
                    add(full, f"${{capture.{name}}}: name a field, e.g. ${{capture.{name}.stdout}}")
                elif step not in visible_steps:
                    add(full, f"${{capture.{name}}}: no earlier step {step!r}")

    for i, step in enumerate(pb.steps):
        earlier = step_ids[:i]
        _check_step(add, check_refs, ("steps", i), step.action, step.with_, earlier)
        if step.compensate is not None:
            # a compensation may use what its own step captured (e.g. the replica count before)
            _check_step(add, check_refs, ("steps", i, "compensate"), step.compensate.action,
                        step.compensate.with_, [*earlier, step.id])
    for key, src in pb.sources.items():
        if src.location:
            check_refs(src.location, ("sources", key, "location"), [], frozenset(), "a source location")
    texts: list[tuple[tuple[str | int, ...], str | None, list[str]]] = []
    for i, pre in enumerate(pb.preconditions):
        texts += [(("preconditions", i, "condition"), pre.condition, []),
                  (("preconditions", i, "query"), pre.query, [])]
    for i, check in enumerate(pb.verify):
        # verification runs after the steps, so it may compare with what they captured
        texts += [(("verify", i, "success"), check.success, step_ids), (("verify", i, "query"), check.query, [])]
    for loc, text, visible in texts:
        if text:
            check_refs(text, loc, visible, frozenset(), f"a {loc[-1]}")
    return [text for _, text in sorted(problems)]


def _check_step(add: Any, check_refs: Any, loc: tuple[str | int, ...], action_name: str,
                with_: dict[str, Any], visible: list[str]) -> None:
    action = get_action(action_name)
    if action is None:
        import difflib

        from opskit.playbooks.providers import ACTIONS

        close = difflib.get_close_matches(action_name, list(ACTIONS), n=1)
        add((*loc, "action"), f"unknown action {action_name!r}" +
            (f" (did you mean {close[0]!r}?)" if close else f"; actions: {', '.join(sorted(ACTIONS))}"))
        return
    for key in with_:
        if key not in action.ARGS:
            import difflib

            close = difflib.get_close_matches(str(key), list(action.ARGS), n=1)
            add((*loc, "with", key), f"unknown argument for {action_name}" +
                (f" (did you mean {close[0]!r}?)" if close else f"; arguments: {', '.join(action.ARGS)}"))
    for path, msg in action.static_problems(with_):
        add((*loc, "with", *path), msg)
    check_refs(with_, (*loc, "with"), visible, action.SECRET_OK, f"{action_name} takes secrets in "
               f"{', '.join(sorted(action.SECRET_OK)) or 'no argument'}")


def is_reference(value: Any) -> bool:
    return isinstance(value, str) and REF.fullmatch(value) is not None

"""File modes as Ansible takes them: octal strings ('0644', '644'), ints (YAML's 0644), symbolic ('u+rwx,g-w,o=r').

Pure functions: ``resolve_mode(spec, current, is_dir)`` gives the numeric mode the path must have,
so modules compare it with what ``stat`` found and ``chmod`` only when they differ.
"""

from __future__ import annotations

import re
import stat as st

from clusterctl.provision.modules.context import ModuleArgError

_SYMBOLIC = re.compile(r"^([ugoa]*)([-+=])([rwxXstugo]*)$")
_WHO_BITS = {
    "u": {"r": st.S_IRUSR, "w": st.S_IWUSR, "x": st.S_IXUSR, "s": st.S_ISUID, "t": 0},
    "g": {"r": st.S_IRGRP, "w": st.S_IWGRP, "x": st.S_IXGRP, "s": st.S_ISGID, "t": 0},
    "o": {"r": st.S_IROTH, "w": st.S_IWOTH, "x": st.S_IXOTH, "s": 0, "t": st.S_ISVTX},
}
_WHO_MASK = {
    "u": st.S_IRWXU | st.S_ISUID,
    "g": st.S_IRWXG | st.S_ISGID,
    "o": st.S_IRWXO | st.S_ISVTX,
}
_SHIFT = {"u": 6, "g": 3, "o": 0}


def is_symbolic(spec) -> bool:
    return isinstance(spec, str) and not re.fullmatch(r"0?[0-7]{3,4}|0o[0-7]{3,4}", spec.strip())


def validate_mode(spec) -> None:
    if spec is None or isinstance(spec, int) and not isinstance(spec, bool):
        return
    if not isinstance(spec, str):
        raise ModuleArgError(f"mode must be an octal string or symbolic mode, got {spec!r}")
    if "{{" in spec or spec in ("preserve",):
        return
    if not is_symbolic(spec):
        return
    for clause in spec.split(","):
        if not _SYMBOLIC.match(clause.strip()):
            raise ModuleArgError(f"bad symbolic mode {spec!r} (clause {clause!r})")


def resolve_mode(spec, current: int | None, is_dir: bool, umask: int = 0o022) -> int | None:
    """The mode a path must end with, given ``spec`` and its ``current`` mode (None = new path)."""
    if spec is None:
        return None
    if isinstance(spec, bool):
        raise ModuleArgError(f"bad mode {spec!r}")
    if isinstance(spec, int):
        return spec & 0o7777
    text = str(spec).strip()
    if re.fullmatch(r"0o[0-7]{3,4}", text):
        return int(text[2:], 8)
    if re.fullmatch(r"0?[0-7]{3,4}", text):
        return int(text, 8)
    validate_mode(text)
    mode = current if current is not None else (0o777 if is_dir else 0o666) & ~umask
    for clause in text.split(","):
        mode = _apply_clause(clause.strip(), mode, is_dir, umask)
    return mode


def _apply_clause(clause: str, mode: int, is_dir: bool, umask: int) -> int:
    m = _SYMBOLIC.match(clause)
    if not m:
        raise ModuleArgError(f"bad symbolic mode clause {clause!r}")
    who, op, perms = m.groups()
    use_umask = who == ""
    targets = "ugo" if who in ("", "a") or "a" in who else who
    new = mode
    for w in targets:
        bits = 0
        for p in perms:
            if p in "ugo":  # copy another class's current bits
                bits |= ((mode >> _SHIFT[p]) & 0o7) << _SHIFT[w]
            elif p == "X":
                if is_dir or mode & 0o111:
                    bits |= _WHO_BITS[w]["x"]
            else:
                bits |= _WHO_BITS[w][p]
        if use_umask:
            bits &= ~umask | 0o7000
        if op == "=":
            new = (new & ~_WHO_MASK[w]) | bits
        elif op == "+":
            new |= bits
        else:
            new &= ~bits
    return new


def format_mode(mode: int | None) -> str | None:
    return None if mode is None else f"{mode:04o}"

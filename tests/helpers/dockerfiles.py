"""Read Dockerfiles and .dockerignore the way Docker does, for tests that cannot run a build.

Only what tests need: instructions with their arguments (line continuations joined, comments
and parser directives dropped), the stages, the sources of COPY/ADD, and the .dockerignore
rule of Docker's pattern matcher (Go filepath.Match plus `**`, `!` exceptions, the last
matching pattern wins, a pattern matching a parent directory also covers everything inside).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath


@dataclass
class Instruction:
    keyword: str  # upper case, e.g. "RUN"
    args: str  # the rest of the instruction, continuations joined with spaces
    line: int  # line of the keyword (1-based)
    stage: str  # name (or index) of the stage it belongs to; "" before the first FROM


@dataclass
class Copy:
    sources: list[str]
    destination: str
    flags: dict[str, str] = field(default_factory=dict)
    line: int = 0
    stage: str = ""


def parse_dockerfile(path: Path) -> list[Instruction]:
    lines = path.read_text().splitlines()
    out: list[Instruction] = []
    stage, count, i = "", 0, 0
    while i < len(lines):
        text = lines[i].strip()
        start = i + 1
        i += 1
        if not text or text.startswith("#"):
            continue
        parts = [text]
        while parts[-1].endswith("\\") and i < len(lines):
            parts[-1] = parts[-1][:-1]
            nxt = lines[i].strip()
            i += 1
            while nxt.startswith("#") and i < len(lines):  # Docker skips comments inside a continuation
                nxt = lines[i].strip()
                i += 1
            parts.append(nxt)
        joined = " ".join(parts).strip()
        keyword, _, args = joined.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else str(count)
            stage, count = name, count + 1
        out.append(Instruction(keyword, args.strip(), start, stage))
    return out


def _split_args(args: str) -> list[str]:
    if args.startswith("["):
        return list(json.loads(args))
    return shlex.split(args)


def copies(instructions: list[Instruction]) -> list[Copy]:
    """COPY and ADD instructions with their flags (--from, --chmod, ...), sources and destination."""
    out = []
    for ins in instructions:
        if ins.keyword not in ("COPY", "ADD"):
            continue
        rest, flags = ins.args, {}
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            name, _, value = flag[2:].partition("=")
            flags[name] = value
            rest = rest.strip()
        words = _split_args(rest)
        out.append(Copy(words[:-1], words[-1], flags, ins.line, ins.stage))
    return out


def stages(instructions: list[Instruction]) -> dict[str, str]:
    """stage name -> the image it starts FROM (unresolved: may hold ${ARG})."""
    result = {}
    for ins in instructions:
        if ins.keyword == "FROM":
            words = ins.args.split()
            words = [w for w in words if not w.startswith("--platform")]
            result[ins.stage] = words[0]
    return result


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    """ARG defaults declared before the first FROM."""
    result = {}
    for ins in instructions:
        if ins.stage:
            break
        if ins.keyword == "ARG":
            name, _, default = ins.args.partition("=")
            result[name.strip()] = default.strip()
    return result


def expand(text: str, variables: dict[str, str]) -> str:
    """${NAME} / $NAME substitution as in FROM lines (unknown names stay as they are)."""
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return variables.get(name, match.group(0))

    for _ in range(5):  # defaults may refer to earlier ARGs
        text = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", replace, text)
    return text


# ---- .dockerignore ---------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "^", 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if i + 1 < len(pattern) and pattern[i + 1] == "*":
                i += 1
                if i + 1 < len(pattern) and pattern[i + 1] == "/":
                    i += 1
                out += ".*" if i + 1 >= len(pattern) else "(.*/)?"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            end = pattern.index("]", i)
            out += "[" + pattern[i + 1:end].replace("!", "^", 1) + "]"
            i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + "$")


@dataclass
class DockerIgnore:
    patterns: list[tuple[re.Pattern[str], bool, str]]  # (regex, is_exception, source text)

    @classmethod
    def read(cls, path: Path) -> DockerIgnore:
        patterns = []
        for raw in path.read_text().splitlines():
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            exception = text.startswith("!")
            text = text[1:].strip() if exception else text
            cleaned = str(PurePosixPath("/" + text)).lstrip("/") or "."
            patterns.append((_pattern_regex(cleaned), exception, raw.strip()))
        return cls(patterns)

    def excluded(self, relative: str) -> bool:
        """True if Docker leaves `relative` (a path in the context, '/'-separated) out."""
        path = str(PurePosixPath(relative))
        parents = [str(p) for p in reversed(PurePosixPath(path).parents) if str(p) != "."]
        matched = False
        for regex, exception, _ in self.patterns:
            hit = bool(regex.match(path)) or any(regex.match(parent) for parent in parents)
            if hit:
                matched = not exception
        return matched

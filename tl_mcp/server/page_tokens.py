"""Page tokens that remember which search they continue.

An upstream next-page token names a search the API ran (its index or store, its query, its filters) and
nothing else we send with it counts: a token passed with other arguments would page through the old
search while the result repeats the new arguments. So a tool hands out the upstream token with a short
tag per argument that defines the search (and one for the kind of search), and takes a token back only
with arguments that match: a mismatch is refused, naming the arguments that differ. No state is kept, so
any replica can check any token. The tags are digests for catching mistakes, not a signature: a token
is no secret and grants nothing the caller could not ask for directly.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping

from mcp.server.mcpserver.exceptions import ToolError

_SEP = "~"
_TAG_CHARS = 4


def _tag(*parts: object) -> str:
    raw = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()[:3]).decode()


def issue(upstream: str | None, kind: str, scope: Mapping[str, object]) -> str | None:
    """``upstream`` (None when there is no next page) tagged with ``kind`` (what the search is, in words:
    "an entity search") and each value of ``scope``."""
    if not upstream:
        return None
    tags = _tag(kind) + "".join(_tag(kind, name, scope[name]) for name in sorted(scope))
    return f"{upstream}{_SEP}{tags}"


def redeem(
    token: str,
    kind: str,
    scope: Mapping[str, object],
    *,
    tool: str,
    optional: frozenset[str] = frozenset(),
) -> str:
    """The upstream token inside ``token``, when it was issued for this kind of search and ``scope``.
    An argument in ``optional`` left out (None) is taken from the token: a next-page call may name only
    what the search needs to be found again."""
    upstream, sep, tags = token.rpartition(_SEP)
    names = sorted(scope)
    malformed = not sep or not upstream or len(tags) < _TAG_CHARS
    if not malformed and tags[:_TAG_CHARS] != _tag(kind):
        raise ToolError(
            f"{tool}: page_token continues another kind of search than this call's ({kind}), so it "
            "cannot page through this one. Leave page_token out to start this search, or give the token "
            "to the tool that returned it, with that call's arguments."
        )
    if malformed or len(tags) != _TAG_CHARS * (len(names) + 1):
        raise ToolError(
            f"{tool}: page_token is not a next_page_token of {tool} (or it was cut short). Pass "
            "next_page_token exactly as the previous result gave it. Leave page_token out to start the "
            "search again."
        )
    differ = [
        name
        for i, name in enumerate(names)
        if not (name in optional and scope[name] is None)
        and tags[_TAG_CHARS * (i + 1) : _TAG_CHARS * (i + 2)] != _tag(kind, name, scope[name])
    ]
    if differ:
        listed = ", ".join(differ)
        raise ToolError(
            f"{tool}: page_token belongs to a search with other {listed} than this call gives, so it "
            f"would page through that search, not this one. Leave page_token out to start a search with "
            f"these arguments, or repeat the {listed} of the call that returned the token."
        )
    return upstream

"""Portable job ids: signed with the shared state keys, bound to the backend and to the principal that
started the job, refused when altered."""

from __future__ import annotations

import pytest
from mcp.server.mcpserver.exceptions import ToolError

from tl_mcp.server.app import job_kinds
from tl_mcp.server.jobs.portable import MAX_JOB_ID, JobIds

OLD, NEW = b"o" * 32, b"n" * 32
SCOPE = "http://127.0.0.1:8765/v1.3"
OWNER = "p_owner"


def test_round_trip_rotation_and_scope() -> None:
    ids = JobIds([OLD], scope=SCOPE)
    job_id = ids.mint("u", ["asset1", "idx1", "ia1", "", ""], OWNER)
    assert job_id is not None and job_id.startswith("job_u:asset1:idx1:ia1::.")
    assert ids.open(job_id, OWNER) == ("u", ["asset1", "idx1", "ia1", "", ""])
    # Rotation: a ring [new, old] still accepts ids signed with the old key.
    assert JobIds([NEW, OLD], scope=SCOPE).open(job_id, OWNER) == ("u", ["asset1", "idx1", "ia1", "", ""])
    # Process-local ids are not portable ones.
    assert ids.open("job_0123456789abcdef", OWNER) is None
    for other in (JobIds([NEW], scope=SCOPE), JobIds([OLD], scope="https://api.twelvelabs.io/v1.3")):
        with pytest.raises(ToolError, match="signature does not match"):
            other.open(job_id, OWNER)


def test_an_id_is_good_only_for_the_principal_it_was_issued_to() -> None:
    ids = JobIds([OLD], scope=SCOPE)
    job_id = ids.mint("u", ["asset1", "idx1", "ia1", "", ""], OWNER)
    assert job_id is not None
    for stranger in ("p_someone_else", ""):
        with pytest.raises(ToolError) as err:
            ids.open(job_id, stranger)
        # The same answer as for a forged id: nothing says the job exists.
        assert "signature does not match" in str(err.value)


@pytest.mark.parametrize(
    "forged",
    [
        "job_u:asset2:idx1:ia1::.{sig}",
        "job_e:asset1:idx1:ia1::.{sig}",
        "job_u:asset1:idx1:ia1::",
        "job_u:asset1:idx1:ia1::.AAAAAAAAAAAAAAAA",
    ],
)
def test_altered_ids_are_refused(forged: str) -> None:
    ids = JobIds([OLD], scope=SCOPE)
    genuine = ids.mint("u", ["asset1", "idx1", "ia1", "", ""], OWNER)
    assert genuine is not None
    with pytest.raises(ToolError) as err:
        ids.open(forged.format(sig=genuine.rpartition(".")[2]), OWNER)
    assert "TL_MCP_STATE_KEYS" in str(err.value) and "start the work again" in str(err.value)


def test_fields_that_cannot_be_carried_keep_the_id_local() -> None:
    ids = JobIds([OLD], scope=SCOPE)
    assert ids.mint("u", ["has:colon"], OWNER) is None
    assert ids.mint("u", ["x" * MAX_JOB_ID], OWNER) is None


def test_streams_cannot_move_and_say_what_to_do() -> None:
    porter = job_kinds()
    with pytest.raises(ToolError) as err:
        porter.resume("job_j:abc:sess_1.sig", "j", ["abc", "sess_1"])
    assert 'continue_session(session_id="sess_1"' in str(err.value) and "another replica" in str(err.value)
    with pytest.raises(ToolError, match="analyze_video again"):
        porter.resume("job_a:abc.sig", "a", ["abc"])

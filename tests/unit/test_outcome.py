import pytest

from payerbridge import errors
from payerbridge.fhir.outcome import outcome_for


@pytest.mark.parametrize(
    "error,status,code",
    [
        (errors.NoMatch("x"), 422, "not-found"),
        (errors.AmbiguousMatch("x"), 422, "multiple-matches"),
        (errors.ConsentDenied("x"), 422, "business-rule"),
        (errors.MalformedContent("x"), 400, "structure"),
        (errors.InvalidInput("x"), 400, "invalid"),
        (errors.PayloadTooLarge("x"), 413, "too-long"),
        (errors.NotFound("x"), 404, "not-found"),
        (errors.NotAcceptable("x"), 406, "not-supported"),
        (errors.UnsupportedMediaType("x"), 415, "not-supported"),
        (errors.PartnerUnavailable("x"), 503, "transient"),
        (errors.PayerBridgeError("x"), 500, "exception"),
    ],
)
def test_each_error_has_its_status_and_issue_code(
    error: errors.PayerBridgeError, status: int, code: str
) -> None:
    got_status, body = outcome_for(error, "rid-1")
    assert got_status == status
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == code
    assert body["issue"][0]["details"]["text"] == "x"
    assert "rid-1" in body["issue"][0]["diagnostics"]


def test_several_issues_become_several_entries_and_keep_their_own_code() -> None:
    error = errors.InvalidInput(
        "bad", issues=[errors.Issue("a", "x.y", "required"), errors.Issue("b")]
    )
    _, body = outcome_for(error)
    assert [(i["code"], i.get("expression")) for i in body["issue"]] == [
        ("required", ["x.y"]),
        ("invalid", None),
    ]

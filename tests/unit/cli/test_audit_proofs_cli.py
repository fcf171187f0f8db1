"""``payerbridge audit prove`` and ``verify-proof`` refuse what they cannot act on, by
name, before they touch a database (typer's runner, in this process)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from payerbridge.cli.audit import audit_app


def test_prove_needs_an_event_or_a_checkpoint_and_not_both() -> None:
    for args in (["prove"], ["prove", "--event", "3", "--consistency", "1"]):
        result = CliRunner().invoke(audit_app, args)
        assert result.exit_code == 2 and "--event SEQ or --consistency FIRST" in result.output
    assert CliRunner().invoke(audit_app, ["prove", "--event", "0"]).exit_code == 2


def test_verify_proof_names_an_unreadable_proof_or_key(tmp_path: Path) -> None:
    key = tmp_path / "key.pub"
    key.write_text("not a key")
    proof = tmp_path / "proof.json"
    proof.write_text('{"kind": "something else"}')
    missing = CliRunner().invoke(
        audit_app, ["verify-proof", str(tmp_path / "none.json"), "--public-key", str(key)]
    )
    assert missing.exit_code == 2 and "cannot read the proof or the key" in missing.output
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = Ed25519PrivateKey.generate().public_key()
    key.write_bytes(public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    odd = CliRunner().invoke(audit_app, ["verify-proof", str(proof), "--public-key", str(key)])
    assert odd.exit_code == 2 and "not a proof document" in odd.output

"""``di-archiver keygen``: a local signing key for sealing local archives (no KMS).

Writes an EC P-256 private key (mode 0600, never overwritten) and its public key beside it
(``<out>.pub.pem``). Seal with ``--signing-key <out>``; give auditors the ``.pub.pem`` for
``verify --public-key``. Keep both outside the archive directory: a key stored with the
archive proves nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from di_archiver.commands.common import EXIT_OK, emit

NAME = "keygen"
HELP = "Create a local manifest signing key (EC P-256) and its public key."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``keygen``'s arguments."""
    parser.add_argument(
        "--out",
        required=True,
        metavar="PEM",
        help="Private key file to create (refused if it exists).",
    )


def run(args: argparse.Namespace) -> int:
    """Create the key pair and print where they are."""
    from di_archiver.adapters.signing import LocalKeySigner  # noqa: PLC0415

    out = Path(args.out)
    signer = LocalKeySigner.generate(out)
    public = out.with_name(out.name.removesuffix(".pem") + ".pub.pem")
    public.write_bytes(signer.verifier().public_pem())
    document = {
        "command": NAME,
        "private_key": str(out),
        "public_key": str(public),
        "fingerprint": signer.fingerprint,
    }
    emit(
        args,
        document,
        [
            f"private key {out} (mode 0600: seal with --signing-key {out})",
            f"public key  {public} (verify --public-key {public})",
            f"fingerprint {signer.fingerprint}",
        ],
    )
    return EXIT_OK

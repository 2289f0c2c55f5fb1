"""Standard Webhooks v1 signing, with the maintained `standardwebhooks` implementation."""

import base64
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook as Signer

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def signed_headers(
    signing_secrets: list[str], message_id: str, timestamp: datetime, body: str
) -> dict[str, str]:
    """webhook-id / webhook-timestamp / webhook-signature for a body.

    While a rotated secret is still honoured, the signature header carries one
    signature per secret (space-separated), so receivers on either verify.
    """
    signatures = " ".join(Signer(secret).sign(message_id, timestamp, body) for secret in signing_secrets)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signatures,
        "Content-Type": "application/json",
        # Only the first 2 KiB of the response are kept, and unencoded: no decompression.
        "Accept-Encoding": "identity",
    }

"""KMS fidelity: a message is at most 4,096 bytes, and a key is named by its id or its ARN,
as AWS's API says."""

# The operations whose `Message` AWS bounds (1 to 4,096 bytes; Encrypt's Plaintext moto checks).
_BOUNDED = ("generate_mac", "verify_mac", "sign", "verify")
MAX_MESSAGE_BYTES = 4096


def _length_error(length: int):
    from moto.kms.exceptions import ValidationException

    bound = ("greater than or equal to 1" if length < 1
             else f"less than or equal to {MAX_MESSAGE_BYTES}")
    return ValidationException("1 validation error detected: Value at 'message' failed to "
                               f"satisfy constraint: Member must have length {bound}")


def patch_message_limits():
    """moto MACs, signs and verifies a message of any length (an empty one too); AWS answers
    `ValidationException` outside 1 to 4,096 bytes. Without the bound a product that MACs its
    documents whole would pass every local test and fail on AWS for its larger records."""
    from moto.kms.responses import KmsResponse

    for name in _BOUNDED:
        original = getattr(KmsResponse, name)

        def bounded(self, _original=original):
            message = self._get_param("Message")
            length = len(message) if message is not None else 0
            if not 1 <= length <= MAX_MESSAGE_BYTES:
                raise _length_error(length)
            return _original(self)

        setattr(KmsResponse, name, bounded)


def patch_key_arns():
    """AWS takes a key's ARN wherever it takes its id; moto's ScheduleKeyDeletion,
    CancelKeyDeletion, EnableKey and DisableKey look the ARN up as an id and answer 500."""
    from moto.kms.models import KmsBackend

    for name in ("schedule_key_deletion", "cancel_key_deletion", "enable_key", "disable_key"):
        original = getattr(KmsBackend, name)

        def by_id(self, key_id, *args, _original=original):
            return _original(self, self.get_key_id(key_id), *args)

        setattr(KmsBackend, name, by_id)

"""KMS fidelity: a message is at most 4,096 bytes, and a key is named by its id or its ARN,
as AWS's API says, and a DIGEST message is signed as a digest."""

import contextvars

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


# Whether the request being answered said MessageType=DIGEST: the response knows, the key
# object that signs does not (moto passes only the message and the algorithm down).
_DIGEST = contextvars.ContextVar("kms_message_is_a_digest", default=False)


def _hash(signing_algorithm: str):
    """The hash an algorithm names (`ECDSA_SHA_256`, `RSASSA_PSS_SHA_384`...), or None."""
    from cryptography.hazmat.primitives import hashes

    return {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}.get(
        signing_algorithm.rsplit("_", 1)[-1], lambda: None)()


def _prehashed(signing_algorithm: str):
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    return Prehashed(_hash(signing_algorithm))


def patch_digests():
    """moto ignores `MessageType=DIGEST`: it hashes the digest it is given again, so its
    signature holds over SHA-256(digest) and fails an offline check with the public key (a
    prehashed verify), where AWS's passes. Sign and verify a DIGEST message as the digest it is;
    AWS refuses one whose length is not the algorithm's hash's."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec
    from moto.kms import utils
    from moto.kms.exceptions import ValidationException
    from moto.kms.responses import KmsResponse

    for name in ("sign", "verify"):
        original = getattr(KmsResponse, name)

        def with_message_type(self, _original=original):
            digest = self._get_param("MessageType") == "DIGEST"
            algorithm = self._get_param("SigningAlgorithm") or ""
            expected = _hash(algorithm)
            if digest and expected and len(self._get_param("Message") or b"") != (
                    expected.digest_size):
                raise ValidationException(f"Digest is invalid length for algorithm {algorithm}.")
            token = _DIGEST.set(digest)
            try:
                return _original(self)
            finally:
                _DIGEST.reset(token)

        setattr(KmsResponse, name, with_message_type)

    ecdsa = lambda key, algorithm: (ec.ECDSA(_prehashed(algorithm)),)  # noqa: E731
    rsa = lambda key, algorithm: (  # noqa: E731
        key._RSAPrivateKey__padding_and_hash_algorithm(algorithm)[0], _prehashed(algorithm))
    rsa_algorithms = lambda key: utils.SigningAlgorithm.rsa_signing_algorithms()  # noqa: E731
    for cls, arguments, valid in (
            (utils.ECDSAPrivateKey, ecdsa, lambda key: key.valid_signing_algorithms),
            (utils.RSAPrivateKey, rsa, rsa_algorithms)):
        plain_sign, plain_verify = cls.sign, cls.verify

        def sign(self, message, algorithm, _plain=plain_sign, _arguments=arguments, _valid=valid):
            if not _DIGEST.get():
                return _plain(self, message, algorithm)
            utils.validate_signing_algorithm(algorithm, _valid(self))
            return self.private_key.sign(message, *_arguments(self, algorithm))

        def verify(self, message, signature, algorithm, _plain=plain_verify,
                   _arguments=arguments, _valid=valid):
            if not _DIGEST.get():
                return _plain(self, message, signature, algorithm)
            utils.validate_signing_algorithm(algorithm, _valid(self))
            try:
                self.private_key.public_key().verify(signature, message,
                                                     *_arguments(self, algorithm))
            except InvalidSignature:
                return False
            return True

        cls.sign, cls.verify = sign, verify

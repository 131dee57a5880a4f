"""The worker's connection options in Faust's vocabulary, for every security setup."""

from __future__ import annotations

from faust.auth import OAuthCredentials, SASLCredentials, SSLCredentials
from pydantic import SecretStr

from kolony.settings import Settings
from streams.app import faust_credentials


def test_plaintext_needs_none() -> None:
    assert faust_credentials(Settings(bootstrap_servers="k:9092")) is None


def test_msk_iam_signs_oauthbearer_tokens_over_tls() -> None:
    settings = Settings(
        bootstrap_servers="b-1:9098",
        security_protocol="SASL_SSL",
        sasl_mechanism="AWS_MSK_IAM",
        aws_region="ap-south-1",
    )
    assert isinstance(faust_credentials(settings), OAuthCredentials)


def test_scram_and_tls() -> None:
    scram = Settings(
        bootstrap_servers="k:9096",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="kolony",
        sasl_password=SecretStr("s3cret"),
    )
    credentials = faust_credentials(scram)
    assert isinstance(credentials, SASLCredentials)
    assert (credentials.username, credentials.password) == ("kolony", "s3cret")
    tls = Settings(bootstrap_servers="k:9093", security_protocol="SSL")
    assert isinstance(faust_credentials(tls), SSLCredentials)

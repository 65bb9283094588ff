"""A local S3 (moto's server mode) on 127.0.0.1 and the Airflow ``aws`` connection to it.

Statements on object storage are tested against a real S3 HTTP endpoint — real
requests through s3fs and botocore, real ETags, no rename — rather than a mocked
client, and the DAG, run as its own process by ``airflow dags test``, reaches it
through an ordinary Airflow connection (``AIRFLOW_CONN_AWS_S3_TEST``). Nothing leaves
the loopback interface and the keys are fake.

moto keeps its state per process, shared by every server started in it: each
:class:`LocalS3` therefore makes a bucket of its own, so two servers (or two test
modules) never see each other's objects.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from moto.server import ThreadedMotoServer
from s3fs import S3FileSystem

from vapi_chargeback.localrun import free_port

LOOPBACK = "127.0.0.1"
CONN_ID = "aws_s3_test"
CONN_ENV = f"AIRFLOW_CONN_{CONN_ID.upper()}"
REGION = "us-east-1"
ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"


@dataclass(frozen=True)
class LocalS3:
    """A running moto S3 server with one empty bucket of its own."""

    endpoint_url: str
    bucket: str

    def url(self, prefix: str) -> str:
        """``s3://aws_s3_test@{bucket}/{prefix}``: what ``ObjectStoragePath`` and the DAG get."""
        return f"s3://{CONN_ID}@{self.bucket}/{prefix.strip('/')}"

    def connection_json(self) -> str:
        """The ``aws`` connection as Airflow reads it from ``AIRFLOW_CONN_AWS_S3_TEST``."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": ACCESS_KEY,
                "password": SECRET_KEY,
                "extra": {"endpoint_url": self.endpoint_url, "region_name": REGION},
            }
        )

    def client(self) -> Any:
        """A boto3 S3 client of our own: the checks read S3 without Airflow's help."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def filesystem(self) -> S3FileSystem:
        """A fresh s3fs filesystem (no shared listing cache) on this server."""
        return S3FileSystem(
            key=ACCESS_KEY,
            secret=SECRET_KEY,
            endpoint_url=self.endpoint_url,
            client_kwargs={"region_name": REGION},
            skip_instance_cache=True,
        )

    def objects(self, prefix: str) -> dict[str, bytes]:
        """Every object under ``prefix``, by key relative to it, read with boto3."""
        client = self.client()
        base = prefix.strip("/") + "/"
        found: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=base
        ):
            for item in page.get("Contents", []):
                body = client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"]
                found[item["Key"].removeprefix(base)] = body.read()
        return found


@contextmanager
def local_s3() -> Iterator[LocalS3]:
    """Start moto's S3 server on a free loopback port, create a bucket, stop it afterwards."""
    port = free_port(LOOPBACK)
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=port, verbose=False)
    server.start()
    try:
        s3 = LocalS3(f"http://{LOOPBACK}:{port}", f"statements-{uuid.uuid4().hex[:12]}")
        s3.client().create_bucket(Bucket=s3.bucket)
        yield s3
    finally:
        server.stop()

import base64
import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from di_archiver.query import schema
from di_archiver.query.catalog import named_queries
from infra.constructs.query import QueryConstruct

ORGS = ["64a0c0ffee0000000000a001", "64a0c0ffee0000000000a002"]
CUTOFF = 10 * 1024**3


def _synth(*, with_key: bool, auditor: bool = False) -> tuple[Template, cdk.Stack]:
    app = cdk.App(context={"aws:cdk:bundling-stacks": []})
    stack = cdk.Stack(
        app, "QueryTest", env=cdk.Environment(account="111111111111", region="eu-west-1")
    )
    # The archive bucket is the stack's (nag-checked there); here it is only a stand-in.
    bucket = s3.Bucket(stack, "Archive", enforce_ssl=True)
    cdk.Validations.of(bucket).acknowledge(
        cdk.Acknowledgment(id="AwsSolutions::AwsSolutions-S1", reason="test stand-in")
    )
    key = kms.Key(stack, "Key", enable_key_rotation=True) if with_key else None
    construct = QueryConstruct(
        stack, "Query", archive_bucket=bucket, archive_prefix="di", org_ids=ORGS,
        services=["sso", "pam"], kms_key=key, bytes_scanned_cutoff=CUTOFF,
    )  # fmt: skip
    if auditor:
        # The grant's prefix wildcards are the stack's to justify; nag checks the construct.
        role = iam.Role(stack, "Auditor", assumed_by=iam.AccountRootPrincipal())
        construct.grant_query(role)
    else:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return Template.from_stack(stack), stack


@pytest.fixture(scope="module")
def kms_template() -> Template:
    return _synth(with_key=True)[0]


def _table(template: Template, name: str) -> dict[str, Any]:
    tables = template.find_resources(
        "AWS::Glue::Table", {"Properties": {"TableInput": {"Name": name}}}
    )
    assert len(tables) == 1
    table: dict[str, Any] = next(iter(tables.values()))["Properties"]["TableInput"]
    return table


def test_typed_table_uses_projection_and_the_layout_template(kms_template: Template) -> None:
    table = _table(kms_template, schema.TYPED_TABLE)
    params = table["Parameters"]
    assert params["projection.enabled"] == "true"
    assert params["projection.org.values"] == ",".join(ORGS)
    assert "pam" in params["projection.svc.values"].split(",")
    assert params["projection.dt.range"] == "2020-01-01,NOW"
    template = params["storage.location.template"]
    # the bucket name is a token: the template is s3://<bucket>/di/org=${org}/svc=${svc}/dt=${dt}/
    assert template["Fn::Join"][1][-1] == "/di/org=${org}/svc=${svc}/dt=${dt}/"
    serde = table["StorageDescriptor"]["SerdeInfo"]
    assert serde["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert serde["Parameters"]["mapping.at_version"] == "@version"
    assert "ignore.malformed.json" not in serde["Parameters"]
    columns = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
    assert columns == [c.name for c in schema.COLUMNS]
    assert [p["Name"] for p in table["PartitionKeys"]] == ["org", "svc", "dt"]


def test_raw_table_injects_svc_so_new_services_stay_reachable(kms_template: Template) -> None:
    params = _table(kms_template, schema.RAW_TABLE)["Parameters"]
    assert params["projection.svc.type"] == "injected"


def test_view_is_a_presto_view_of_the_shared_sql(kms_template: Template) -> None:
    view = _table(kms_template, schema.VIEW)
    assert view["TableType"] == "VIRTUAL_VIEW"
    text = view["ViewOriginalText"]
    decoded = json.loads(base64.b64decode(text.removeprefix("/* Presto View: ")[:-3]))
    assert decoded["originalSql"] == schema.view_sql()


def test_workgroup_enforces_encrypted_results_and_a_scan_cutoff(kms_template: Template) -> None:
    kms_template.has_resource_properties(
        "AWS::Athena::WorkGroup",
        {
            "WorkGroupConfiguration": Match.object_like(
                {
                    "EnforceWorkGroupConfiguration": True,
                    "BytesScannedCutoffPerQuery": CUTOFF,
                    "ResultConfiguration": Match.object_like(
                        {
                            "EncryptionConfiguration": Match.object_like(
                                {"EncryptionOption": "SSE_KMS"}
                            )
                        }
                    ),
                }
            )
        },
    )


def test_results_bucket_is_private_encrypted_tls_only_and_expires() -> None:
    template, _ = _synth(with_key=False)
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True, "BlockPublicPolicy": True,
                "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
            },
            "BucketEncryption": Match.any_value(),
            "LifecycleConfiguration": {
                "Rules": Match.array_with([Match.object_like({"ExpirationInDays": 30})])
            },
        },
    )  # fmt: skip
    template.has_resource_properties(
        "AWS::Athena::WorkGroup",
        {"WorkGroupConfiguration": Match.object_like({"ResultConfiguration": Match.object_like(
            {"EncryptionConfiguration": {"EncryptionOption": "SSE_S3"}})})},
    )  # fmt: skip
    policies = template.find_resources("AWS::S3::BucketPolicy")
    statements = [
        s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )


def test_every_named_query_is_deployed_from_its_sql_file(kms_template: Template) -> None:
    deployed = kms_template.find_resources("AWS::Athena::NamedQuery")
    by_name = {r["Properties"]["Name"]: r["Properties"] for r in deployed.values()}
    assert set(by_name) == set(named_queries())
    for name, query in named_queries().items():
        assert by_name[name]["QueryString"] == query.sql
        assert by_name[name]["Database"] == schema.DEFAULT_DATABASE


@pytest.mark.parametrize("with_key", [True, False])
def test_cdk_nag_finds_nothing(with_key: bool) -> None:
    # Given the construct with the AWS Solutions checks as a validation plugin
    _, stack = _synth(with_key=with_key)
    # Then synthesis (which runs the plugin and fails on findings) succeeded
    assert stack.node.find_child("Query") is not None


def test_grant_query_allows_the_workgroup_and_reading_the_archive_prefix_only() -> None:
    template, _ = _synth(with_key=True, auditor=True)
    policies = template.find_resources("AWS::IAM::Policy")
    statements = [
        s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    actions = {
        a
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert {"athena:StartQueryExecution", "glue:GetPartitions", "s3:GetObject*"} <= actions
    assert not any(a.startswith(("glue:Delete", "glue:Update", "glue:Create")) for a in actions)
    # deletes only ever touch the results bucket, never the archive
    for statement in statements:
        if any(str(a).startswith("s3:Delete") for a in statement["Action"]):
            assert "Archive" not in json.dumps(statement["Resource"])
    archive_reads = [
        json.dumps(s["Resource"]) for s in statements if "s3:GetObject*" in s["Action"]
    ]
    assert any("/di/*" in r for r in archive_reads)

"""Athena/Glue over the archive: database, typed + raw tables with partition projection, the
``events`` view, a locked-down workgroup with its own results bucket, and the named queries.

Table, view and query definitions come from ``di_archiver.query`` (the same code the local
DuckDB engine and the DDL tests use), so what is deployed is what is tested.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from di_archiver.query import schema
from di_archiver.query.catalog import named_queries

_DESCRIPTION_LIMIT = 1024


class QueryConstruct(Construct):
    """Everything an auditor needs to query the archive with Athena, and nothing to run."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        archive_bucket: s3.IBucket,
        archive_prefix: str,
        org_ids: Sequence[str],
        services: Sequence[str] = (),
        kms_key: kms.IKey | None,
        bytes_scanned_cutoff: int,
        database_name: str = schema.DEFAULT_DATABASE,
        workgroup_name: str = "di-archiver",
        results_expiration_days: int = 30,
        results_access_logs_bucket: s3.IBucket | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        if bytes_scanned_cutoff < 10 * 1024 * 1024:
            raise ValueError("bytes_scanned_cutoff must be at least 10 MB (Athena's minimum)")
        # Services outside KNOWN_SERVICES (e.g. a new one JumpCloud adds) become svc enum extras.
        extra = [s for s in services if s not in schema.projected_services()]
        account = Stack.of(self).account

        self.results_bucket = s3.Bucket(
            self,
            "Results",
            encryption=s3.BucketEncryption.KMS if kms_key else s3.BucketEncryption.S3_MANAGED,
            encryption_key=kms_key,
            bucket_key_enabled=kms_key is not None,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=False,
            server_access_logs_bucket=results_access_logs_bucket,
            server_access_logs_prefix="athena-results/" if results_access_logs_bucket else None,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=Duration.days(results_expiration_days),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=removal_policy,
        )
        if results_access_logs_bucket is None:
            Validations.of(self.results_bucket).acknowledge(
                Acknowledgment(
                    id="AwsSolutions::AwsSolutions-S1",
                    reason="Query results expire quickly and every query is already recorded "
                    "by Athena/CloudTrail; pass results_access_logs_bucket to log access.",
                )
            )

        self.database_name = database_name
        database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=database_name,
                description="JumpCloud Directory Insights archive (di-archiver)",
            ),
        )

        typed, raw = schema.table_specs(
            bucket=archive_bucket.bucket_name,
            prefix=archive_prefix,
            org_ids=list(org_ids),
            extra_services=extra,
        )
        self.table_name = typed.name
        self.raw_table_name = raw.name
        tables = [self._table(spec, account, database) for spec in (typed, raw)]

        self.view_name = schema.VIEW
        view = glue.CfnTable(
            self,
            "EventsView",
            catalog_id=account,
            database_name=database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=schema.VIEW,
                table_type="VIRTUAL_VIEW",
                description="DI events with a typed UTC timestamp; filter dt to prune",
                parameters={"presto_view": "true", "comment": "Presto View"},
                view_original_text=schema.presto_view_original_text(database=database_name),
                view_expanded_text="/* Presto View */",
                partition_keys=[],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    columns=[
                        glue.CfnTable.ColumnProperty(name=name, type=hive.hive())
                        for name, hive, _ in schema.view_columns()
                    ],
                    serde_info=glue.CfnTable.SerdeInfoProperty(),
                ),
            ),
        )
        view.add_dependency(tables[0])

        self.workgroup_name = workgroup_name
        encryption = athena.CfnWorkGroup.EncryptionConfigurationProperty(
            encryption_option="SSE_KMS" if kms_key else "SSE_S3",
            kms_key=kms_key.key_arn if kms_key else None,
        )
        self.workgroup = athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=workgroup_name,
            description="di-archiver queries: results encrypted, per-query scan cutoff",
            state="ENABLED",
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=bytes_scanned_cutoff,
                requester_pays_enabled=False,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version="Athena engine version 3"
                ),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{self.results_bucket.bucket_name}/results/",
                    encryption_configuration=encryption,
                    expected_bucket_owner=account,
                ),
            ),
        )

        self.named_query_names: list[str] = []
        for query in named_queries().values():
            named = athena.CfnNamedQuery(
                self,
                f"Query-{query.name}",
                name=query.name,
                description=(f"{query.description} Parameters: {', '.join(query.params)}.")[
                    :_DESCRIPTION_LIMIT
                ],
                database=database_name,
                query_string=query.sql,
                work_group=workgroup_name,
            )
            named.add_dependency(self.workgroup)
            named.add_dependency(database)
            self.named_query_names.append(query.name)

        self._archive_bucket = archive_bucket
        self._archive_prefix = archive_prefix.strip("/")
        self._kms_key = kms_key

    def _table(
        self, spec: schema.TableSpec, account: str, database: glue.CfnDatabase
    ) -> glue.CfnTable:
        table = glue.CfnTable(
            self,
            "Table-" + spec.name,
            catalog_id=account,
            database_name=self.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=spec.name,
                description=spec.comment,
                table_type="EXTERNAL_TABLE",
                parameters={"EXTERNAL": "TRUE", **spec.parameters},
                partition_keys=[
                    glue.CfnTable.ColumnProperty(name=c.name, type=c.type.hive(), comment=c.comment)
                    for c in schema.PARTITION_COLUMNS
                ],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=spec.location,
                    input_format=schema.INPUT_FORMAT,
                    output_format=schema.OUTPUT_FORMAT,
                    compressed=True,
                    columns=[
                        glue.CfnTable.ColumnProperty(
                            name=c.name, type=c.type.hive(), comment=c.comment or None
                        )
                        for c in spec.columns
                    ],
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library=spec.serde, parameters=spec.serde_parameters
                    ),
                ),
            ),
        )
        table.add_dependency(database)
        return table

    def grant_query(self, grantee: iam.IGrantable) -> None:
        """Let ``grantee`` run Athena queries in the workgroup over the archive (read-only)."""
        stack = Stack.of(self)
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[
                "athena:StartQueryExecution",
                "athena:GetQueryExecution",
                "athena:GetQueryResults",
                "athena:StopQueryExecution",
                "athena:GetWorkGroup",
                "athena:ListNamedQueries",
                "athena:GetNamedQuery",
                "athena:BatchGetNamedQuery",
            ],
            resource_arns=[
                stack.format_arn(
                    service="athena", resource="workgroup", resource_name=self.workgroup_name
                )
            ],
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:GetPartitions"],
            resource_arns=[
                stack.format_arn(service="glue", resource="catalog"),
                stack.format_arn(
                    service="glue", resource="database", resource_name=self.database_name
                ),
                stack.format_arn(
                    service="glue", resource="table", resource_name=f"{self.database_name}/*"
                ),
            ],
        )
        pattern = f"{self._archive_prefix}/*" if self._archive_prefix else "*"
        self._archive_bucket.grant_read(grantee, pattern)
        self.results_bucket.grant_read_write(grantee)
        if self._kms_key is not None:
            self._kms_key.grant_encrypt_decrypt(grantee)

"""Evaluate the synthesised template's IAM, bucket and key policies like AWS does.

moto's IAM enforcement cannot judge these policies: it ignores resource policies and reads
IAM's ``?`` wildcard (one character) as a regular expression. This evaluator implements the
parts of AWS's evaluation logic the stack uses, and fails loudly on anything else (an unknown
condition operator or intrinsic), so a policy it cannot judge never passes silently:

- an explicit Deny in any applicable policy wins;
- otherwise an Allow in the principal's identity policy, or (S3) in the bucket policy naming
  the principal, allows; KMS also needs the key policy to allow, and the default key policy's
  account-root statement delegates that to IAM;
- ``Action``/``NotAction`` and ``Resource`` match case-insensitively (actions) / exactly
  (ARNs) with ``*`` = any run of characters (``/`` included) and ``?`` = one character.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "111122223333"
REGION = "eu-west-1"
BUCKET = "di-archive-bucket"


def _pattern(text: str, *, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile(f"^{body}$", re.IGNORECASE if ignore_case else 0)


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    return _pattern(pattern, ignore_case=ignore_case).match(value) is not None


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass
class Resolver:
    """Turns CloudFormation intrinsics into concrete strings for one imagined deployment."""

    template: Mapping[str, Any]
    arns: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for logical_id, resource in self.template["Resources"].items():
            kind = resource["Type"]
            if kind == "AWS::S3::Bucket":
                name = BUCKET if "ObjectLockEnabled" in resource["Properties"] else logical_id
                self.arns[logical_id] = f"arn:aws:s3:::{name.lower()}"
            elif kind == "AWS::KMS::Key":
                self.arns[logical_id] = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{logical_id}"
            elif kind == "AWS::IAM::Role":
                self.arns[logical_id] = f"arn:aws:iam::{ACCOUNT}:role/{logical_id}"
            elif kind == "AWS::SecretsManager::Secret":
                self.arns[logical_id] = (
                    f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{logical_id}"
                )
            else:
                self.arns[logical_id] = f"arn:aws:other:{REGION}:{ACCOUNT}:{logical_id}"

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str | int | float | bool):
            return value
        if isinstance(value, list):
            return [self(item) for item in value]
        if isinstance(value, dict) and len(value) == 1:
            [(name, arg)] = value.items()
            if name == "Ref":
                pseudo = {
                    "AWS::Partition": "aws",
                    "AWS::Region": REGION,
                    "AWS::AccountId": ACCOUNT,
                    "AWS::URLSuffix": "amazonaws.com",
                }
                return pseudo.get(arg) or self.arns[arg]
            if name == "Fn::GetAtt":
                if arg[1] != "Arn":
                    raise AssertionError(f"cannot resolve {value}")
                return self.arns[arg[0]]
            if name == "Fn::Join":
                return arg[0].join(str(self(part)) for part in arg[1])
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        raise AssertionError(f"cannot resolve {value!r}")


def _condition_holds(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    for operator, tests in condition.items():
        for key, expected in tests.items():
            actual = context.get(key)
            wanted = [str(v) for v in _listify(expected)]
            if operator == "ArnNotEquals":
                ok = actual is not None and not any(wildcard_match(w, actual) for w in wanted)
            elif operator == "ArnEquals" or operator == "ArnLike":
                ok = actual is not None and any(wildcard_match(w, actual) for w in wanted)
            elif operator in ("Bool", "StringEquals"):
                ok = actual is not None and actual in wanted
            elif operator == "StringNotEquals":
                ok = actual is None or actual not in wanted
            elif operator == "NumericLessThan":
                ok = actual is not None and any(float(actual) < float(w) for w in wanted)
            else:
                raise AssertionError(f"condition operator {operator} is not evaluated here")
            if not ok:
                return False
    return True


def _principal_matches(principal: Any, arn: str) -> bool:
    if principal == "*" or principal == {"AWS": "*"}:
        return True
    if isinstance(principal, dict) and "AWS" in principal:
        return any(
            p == arn or p == f"arn:aws:iam::{ACCOUNT}:root" for p in _listify(principal["AWS"])
        )
    return False


def _applies(
    statement: Mapping[str, Any],
    action: str,
    resource: str,
    context: Mapping[str, str],
    principal: str | None,
) -> bool:
    if "NotAction" in statement:
        if any(
            wildcard_match(a, action, ignore_case=True) for a in _listify(statement["NotAction"])
        ):
            return False
    elif not any(
        wildcard_match(a, action, ignore_case=True) for a in _listify(statement["Action"])
    ):
        return False
    if "NotResource" in statement:
        if any(wildcard_match(r, resource) for r in _listify(statement["NotResource"])):
            return False
    elif not any(wildcard_match(r, resource) for r in _listify(statement["Resource"])):
        return False
    if principal is not None and not _principal_matches(statement.get("Principal"), principal):
        return False
    return _condition_holds(statement.get("Condition", {}), context)


@dataclass
class Account:
    """The synthesised stack's policies, resolved, ready to answer "may role X do Y on Z?"."""

    template: Mapping[str, Any]

    def __post_init__(self) -> None:
        self.resolve = Resolver(self.template)
        self.identity: dict[str, list[dict[str, Any]]] = {}
        self.resource_policies: dict[str, list[dict[str, Any]]] = {}
        for resource in self.template["Resources"].values():
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::IAM::Policy":
                statements = self.resolve(props["PolicyDocument"]["Statement"])
                for role in props["Roles"]:
                    self.identity.setdefault(self.resolve(role), []).extend(statements)
            elif resource["Type"] == "AWS::S3::BucketPolicy":
                bucket = self.resolve(props["Bucket"])
                bucket_arn = bucket if bucket.startswith("arn:") else f"arn:aws:s3:::{bucket}"
                self.resource_policies[bucket_arn] = self.resolve(
                    props["PolicyDocument"]["Statement"]
                )
        for logical_id, resource in self.template["Resources"].items():
            if resource["Type"] == "AWS::KMS::Key":
                self.resource_policies[self.resolve.arns[logical_id]] = self.resolve(
                    resource["Properties"]["KeyPolicy"]["Statement"]
                )

    def role_arn(self, logical_id: str) -> str:
        return self.resolve.arns[logical_id]

    def role_name_arn(self, role_ref: str) -> str:
        return self.resolve({"Ref": role_ref})  # type: ignore[no-any-return]

    def allowed(
        self,
        principal_arn: str,
        action: str,
        resource: str,
        *,
        identity: Iterable[Mapping[str, Any]] | None = None,
    ) -> bool:
        """AWS's decision for a same-account principal (TLS request)."""
        context = {
            "aws:PrincipalArn": principal_arn,
            "aws:SecureTransport": "true",
            "s3:TlsVersion": "1.3",
        }
        own = list(identity) if identity is not None else self.identity.get(principal_arn, [])
        service = action.split(":", 1)[0].lower()
        owner = self._owning_resource(service, resource)
        others = self.resource_policies.get(owner, []) if owner else []
        applicable_own = [s for s in own if _applies(s, action, resource, context, None)]
        applicable_res = [
            s for s in others if _applies(s, action, resource, context, principal_arn)
        ]
        if any(s["Effect"] == "Deny" for s in applicable_own + applicable_res):
            return False
        identity_allows = any(s["Effect"] == "Allow" for s in applicable_own)
        if service == "kms":
            # The key policy must allow; its account-root statement delegates to IAM.
            root = f"arn:aws:iam::{ACCOUNT}:root"
            delegated = any(
                s["Effect"] == "Allow"
                and _principal_matches(s.get("Principal"), root)
                and root in _listify(s["Principal"].get("AWS"))
                for s in applicable_res
            )
            return identity_allows and delegated
        resource_allows = any(s["Effect"] == "Allow" for s in applicable_res)
        return identity_allows or resource_allows

    def _owning_resource(self, service: str, resource: str) -> str | None:
        if service == "s3":
            bucket = resource.split(":::", 1)[-1].split("/", 1)[0]
            return f"arn:aws:s3:::{bucket}"
        if service == "kms":
            return resource
        return None

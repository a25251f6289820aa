"""The IAM evaluator the sufficiency tests rely on: it must refuse what a policy does not grant."""

from __future__ import annotations

from tests.support.iam import Call, Deployment, Need, allowed, check_calls, needs

TEMPLATE = {"Resources": {
    "Key": {"Type": "AWS::KMS::Key", "Properties": {}},
    "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketEncryption": {"ServerSideEncryptionConfiguration": [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": ["Key", "Arn"]}}}
    ]}}},
    "Role": {"Type": "AWS::IAM::Role", "Properties": {}},
    "Policy": {"Type": "AWS::IAM::Policy", "Properties": {"Roles": [{"Ref": "Role"}], "PolicyDocument": {"Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject",
         "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": ["Bucket", "Arn"]}, "/results/*"]]}},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": {"Fn::GetAtt": ["Bucket", "Arn"]},
         "Condition": {"StringLike": {"s3:prefix": ["results/*"]}}},
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": {"Fn::GetAtt": ["Key", "Arn"]},
         "Condition": {"StringEquals": {"kms:ViaService": "s3.ap-south-1.amazonaws.com"}}},
    ]}}},
}}


def deployment() -> Deployment:
    return Deployment(TEMPLATE, {"Bucket": "b"})


def test_reads_under_the_granted_prefix_are_allowed_with_the_keys_use_through_s3():
    call = Call("Role", "s3", "GetObject", {"Bucket": "b", "Key": "results/x.json"})
    assert [str(n) for n in needs(call, deployment())] == [
        "s3:GetObject on arn:aws:s3:::b/results/x.json",
        "kms:Decrypt on arn:aws:kms:ap-south-1:123456789012:key/Key {'kms:ViaService': 's3.ap-south-1.amazonaws.com'}"]
    assert check_calls([call], deployment())


def test_what_the_policy_does_not_grant_is_reported():
    verdict = check_calls([
        Call("Role", "s3", "GetObject", {"Bucket": "b", "Key": "configs/pipeline.json"}),
        Call("Role", "s3", "ListObjectsV2", {"Bucket": "b", "Prefix": "configs/"}),
        Call("Role", "s3", "PutObject", {"Bucket": "b", "Key": "results/x.json"}),
    ], deployment())
    assert not verdict
    missing = "\n".join(verdict.missing["Role"])
    assert "s3:GetObject on arn:aws:s3:::b/configs/pipeline.json" in missing
    assert "s3:ListBucket on arn:aws:s3:::b {'s3:prefix': 'configs/'}" in missing
    assert "s3:PutObject" in missing and "kms:GenerateDataKey" in missing


def test_conditions_must_hold_and_unknown_keys_do_not_match():
    statements = deployment().role_statements("Role")
    assert not allowed(statements, Need("kms:Decrypt", "arn:aws:kms:ap-south-1:123456789012:key/Key"))
    assert not allowed(statements, Need("kms:Decrypt", "arn:aws:kms:ap-south-1:123456789012:key/Key",
                                        (("kms:ViaService", "dynamodb.ap-south-1.amazonaws.com"),)))
    assert allowed(statements, Need("s3:ListBucket", "arn:aws:s3:::b", (("s3:prefix", "results/7/"),)))

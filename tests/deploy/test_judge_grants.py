"""terraform.bedrock_invoke_grants (what test_least_privilege.py checks judge-worker's Bedrock calls against)
follows iam.tf: the same inputs give the ARNs infra/terraform/tests/plan.tftest.hcl asserts for iam.tf, and
each of those ARNs is written in that file, so a change on one side fails here until the other follows."""

from __future__ import annotations

import pytest

import terraform

PLAN_TEST = (terraform.TERRAFORM / "tests" / "plan.tftest.hcl").read_text()
ACCOUNT = "123456789012"  # the mock provider's account in plan.tftest.hcl

# run name in plan.tftest.hcl -> (region, model ids, ARNs the calls name, {routed foundation model: profile})
CASES = {
    "judge_bedrock_by_default": (
        "us-east-1", ["amazon.nova-pro-v1:0", "amazon.titan-embed-text-v2:0"],
        {"arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0",
         "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0"},
        {},
    ),
    "judge_inference_profile": (
        "us-east-1", ["us.amazon.nova-pro-v1:0", "amazon.titan-embed-text-v2:0"],
        {"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0",
         "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0"},
        {"arn:aws:bedrock:*::foundation-model/amazon.nova-pro-v1:0":
         "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0"},
    ),
    "judge_global_profile_and_embedding_profile": (
        "eu-west-1", ["global.anthropic.claude-sonnet-4-5-20250929-v1:0", "eu.cohere.embed-v4:0"],
        {"arn:aws:bedrock:eu-west-1:123456789012:inference-profile/global.anthropic.claude-sonnet-4-5-20250929-v1:0",
         "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.cohere.embed-v4:0"},
        {"arn:aws:bedrock:*::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0":
         "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/global.anthropic.claude-sonnet-4-5-20250929-v1:0",
         "arn:aws:bedrock:*::foundation-model/cohere.embed-v4:0":
         "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.cohere.embed-v4:0"},
    ),
}


@pytest.mark.parametrize("run", sorted(CASES))
def test_the_grant_rule_matches_the_terraform_test(run):
    region, models, called, routed = CASES[run]
    assert f'run "{run}"' in PLAN_TEST
    run_text = PLAN_TEST[PLAN_TEST.index(f'run "{run}"'):]
    run_text = run_text[:run_text.find("\nrun ", 1)]
    for arn in called | set(routed):
        assert f'"{arn}"' in run_text, f"plan.tftest.hcl run {run} no longer asserts {arn}"
    assert terraform.bedrock_invoke_grants(models, region=region, account=ACCOUNT) == (called, routed)


def test_the_defaults_are_the_judges_reference_models():
    assert terraform.bedrock_default_models() == {
        "judge_model": "amazon.nova-pro-v1:0", "embedding_model": "amazon.titan-embed-text-v2:0"}


def test_a_call_names_the_resource_iam_checks():
    assert terraform.bedrock_call_resource("amazon.nova-pro-v1:0", region="us-east-1", account=ACCOUNT) == \
        "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0"
    assert terraform.bedrock_call_resource("us.amazon.nova-pro-v1:0", region="us-east-1", account=ACCOUNT) == \
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0"

"""`make demo`: a compromised instance contained end to end on the embedded AWS.

Builds a VPC with an instance that looks like a real one (launched with security groups, two
interfaces carrying different groups, two volumes, an instance profile), fires a GuardDuty
finding at it with PutEvents, follows the execution step by step, prints the final report, and
exits 0 only if the instance really ended isolated with its snapshots completed and its evidence
verifies against its signed manifest (as `ec2-quarantine evidence verify` checks it), an
insider's undoing of the cut was put back by the tamper watch and recorded with who did it, and
the incident page was published (copied to build/report.html, with build/report.png where
Chromium is).
"""

import json
import os
import sys
import time

import boto3
from botocore.exceptions import ClientError

from deploy import names
from chalicelib import incidents, page, report
from chalicelib.page import span
from local import browser, drive, stack
from quarantine_cli import evidence
from local.victims import make_victim

BUILD = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build")
DEMO_SETTINGS = {"SNAPSHOT_POLL_SECONDS": "1", "SNAPSHOT_DEADLINE_SECONDS": "60"}


def follow(running, execution_arn: str) -> str:
    """Wait for the execution to end, then print it in the README's steps with when each
    started and how long it took; return the final status."""
    sfn = running.client("stepfunctions")
    while (status := sfn.describe_execution(executionArn=execution_arn)["status"]) == "RUNNING":
        time.sleep(0.2)
    taken = drive.steps_taken(drive.history(running, execution_arn))
    for step in taken:
        checks = step["entered"] if step["step"] == "WaitForSnapshots" else None
        print(f"   +{span(step['start']):>9}  {step['step']:<17} took "
              f"{span(step['end'] - step['start'])}"
              + (f"  ({checks} check{'s' * (checks != 1)})" if checks is not None else ""))
    total = taken[-1]["end"] if taken else 0.0
    print(f"   execution {status} after {span(total)}")
    return status


def first_cut(incident: dict) -> None:
    """The entry function's cut, before the execution: when after the incident opened, how long
    it took, and when every interface was isolated."""
    cut = next((e for e in page.events(incident)
                if e["label"] == page.STEP_NAMES["first-cut"] and e["end"] is not None), None)
    if cut is None:
        print("   no first cut recorded")
        return
    print(f"   +{span(cut['start']):>9}  first cut         took {span(cut['end'] - cut['start'])}"
          f": {cut['outcome']}")
    isolated = report.timings(incident)["seconds_after_opening"].get("isolated")
    if isolated is not None:
        print(f"   every interface isolated {span(isolated)} after the incident opened")


def verify(running, victim: dict, incident_id: str) -> list[str]:
    """What the demo promises, checked on the embedded AWS's state; returns what is wrong."""
    ec2 = running.client("ec2")
    problems = []
    isolation = ec2.describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [victim["vpc_id"]]},
        {"Name": "tag:ec2-quarantine", "Values": ["isolation"]}])["SecurityGroups"]
    if len(isolation) != 1 or isolation[0]["IpPermissions"] or isolation[0]["IpPermissionsEgress"]:
        problems.append("no rule-free isolation group in the VPC")
    for eni in victim["interfaces"]:
        groups = [g["GroupId"] for g in ec2.describe_network_interfaces(
            NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]["Groups"]]
        if not isolation or groups != [isolation[0]["GroupId"]]:
            problems.append(f"{eni} has groups {groups}")
    snapshots = ec2.describe_snapshots(Filters=[
        {"Name": "tag:QuarantineIncident", "Values": [incident_id]}])["Snapshots"]
    if len(snapshots) != 2 or any(s["State"] != "completed" for s in snapshots):
        problems.append(f"snapshots: {[(s['SnapshotId'], s['State']) for s in snapshots]}")
    return problems


def tamper_and_watch(running, queue, victim: dict, incident_id: str) -> list[str]:
    """An insider gives an interface its own groups back after containment; CloudTrail's event
    reaches the tamper watch, which puts the isolation group back and records who. Returns
    what is wrong."""
    eni, groups = next(iter(victim["interfaces"].items()))
    print(f"\n6. An insider undoes the cut: {eni} given back {groups} "
          "(ModifyNetworkInterfaceAttribute)")
    iam = running.client("iam")
    iam.create_user(UserName="insider")
    iam.put_user_policy(UserName="insider", PolicyName="one-right", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*",
                                                "Action": "ec2:ModifyNetworkInterfaceAttribute"}]}))
    key = iam.create_access_key(UserName="insider")["AccessKey"]
    insider = boto3.session.Session(
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
        region_name=running.region).client("ec2", endpoint_url=running.endpoint)
    started = time.monotonic()
    insider.modify_network_interface_attribute(NetworkInterfaceId=eni, Groups=groups)
    running.bridge.wait_idle()  # CloudTrail's event delivered, the watch done
    print(f"   every delivery done {time.monotonic() - started:.2f} s after the call "
          "(on AWS, CloudTrail's delivery delay comes on top)")
    for message in drive.messages(running, queue):
        print(f"\n   Subject: {message['Subject']}")
        print("   " + message["Text"].replace("\n", "\n   "))
    entries = [e for e in incidents.get(incident_id).get("tamper") or []
               if e.get("call") == "ModifyNetworkInterfaceAttribute"]
    if not entries or not entries[0]["by"].get("arn", "").endswith(":user/insider"):
        return ["the tampering was not recorded with who made it"]
    return []


def write_page(running, incident_id: str, output: str) -> list[str]:
    """The page as published in the evidence, copied to `output`/report.html, with a
    screenshot beside it where Chromium is on the PATH. Returns what is wrong."""
    try:
        body = running.client("s3").get_object(Bucket=running.names["EVIDENCE_BUCKET"],
                                               Key=f"{incident_id}/{page.PAGE}")["Body"].read()
    except ClientError as error:
        return [f"no incident page in the evidence ({error.response['Error']['Code']})"]
    os.makedirs(output, exist_ok=True)
    written = os.path.join(output, page.PAGE)
    with open(written, "wb") as handle:
        handle.write(body)
    print(f"   {written} ({len(body):,} bytes)")
    png = os.path.join(output, "report.png")
    if browser.screenshot(written, png):
        print(f"   {png} (headless Chromium)")
    else:
        print("   no screenshot: chromium is not on the PATH")
    return []


def show_messages(received: list[dict], cards: list[dict]) -> None:
    """What subscribers get: each message's subject, attributes and email text; for the last
    (the report), the JSON document SQS, Lambda and HTTPS subscribers get, and the Chatbot card
    of each."""
    for message in received:
        attributes = ", ".join(f"{k}={v['Value']}" for k, v in sorted(
            message.get("MessageAttributes", {}).items()))
        print(f"\n   Subject: {message['Subject']}\n   Attributes: {attributes}")
        print("   Email:\n     " + message["Text"].replace("\n", "\n     "))
    if received:
        document = json.dumps(received[-1]["Document"], indent=1)
        lines = document.splitlines()
        print(f"\n   Programs (SQS, Lambda, HTTP(S), Firehose) get JSON ({len(document)} bytes, schema "
              f"{received[-1]['Document']['schema']} v{received[-1]['Document']['version']}):")
        print("     " + "\n     ".join(lines[:20]) + (
            f"\n     ... {len(lines) - 20} more lines" if len(lines) > 20 else ""))
    for card in cards[-1:]:
        print(f"\n   Chatbot card ({len(cards)} sent; the last):")
        print("     " + json.dumps(card, indent=1).replace("\n", "\n     "))


def main(output: str = BUILD) -> int:
    running = stack.start(aws_port=0, api_port=0, verbose=True,
                          environ={**os.environ, **DEMO_SETTINGS})
    try:
        running.start_ticker()  # the sweep, at its rate (LOCAL_TICK_SECONDS: sooner)
        queue = drive.subscribe_queue(running)
        card_queue = drive.subscribe_chatbot(running)
        victim = make_victim(running, interfaces=2, volumes=2,
                             tags={"Name": "web-1", "Environment": "production"})
        print(f"\nVictim {victim['instance_id']} in {victim['vpc_id']}:")
        for eni, groups in victim["interfaces"].items():
            print(f"   {eni}: {groups}")

        print("\n1. GuardDuty reports Backdoor:EC2/C&CActivity.B!DNS (PutEvents)")
        event = drive.guardduty_event(victim["instance_id"])
        drive.put_event(running, event)
        running.bridge.wait_idle()
        handler = names.function(running.stage, "on_guardduty_finding")
        decided = next(i.result for i in running.bridge.invocations if i.function_name == handler)
        print(f"   handler: {decided['decision']} -> incident {decided.get('incident_id')}")
        if decided.get("decision") != "acted":
            print(f"Demo FAILED: the finding was not acted on: {decided}")
            return 1

        incident_id = decided["incident_id"]
        print("\n2. The first cut (the entry function, in the finding's delivery)")
        first_cut(incidents.get(incident_id))

        print("\n3. The execution in the README's steps (after it started; Step Functions' "
              "history)")
        status = follow(running, decided["execution_arn"])

        print("\n4. Messages on the report topic")
        show_messages(drive.messages(running, queue), drive.cards(running, card_queue))

        print("\n5. ec2-quarantine evidence verify " + incident_id)
        checked = evidence.verify(running.client("s3"), running.names["EVIDENCE_BUCKET"],
                                  incident_id, evidence.load_public_key(
                                      evidence.public_key_pem(running.client("kms"), running.names[
                                          "EVIDENCE_SIGNING_KEY_ARN"])))
        print("   " + evidence.render(checked).replace("\n", "\n   "))

        tampered = tamper_and_watch(running, queue, victim, incident_id)

        print("\n7. The incident page (report.html in the evidence, rewritten after the "
              "tampering)")
        problems = verify(running, victim, incident_id) + tampered + write_page(
            running, incident_id, output)
        if not checked["verified"]:
            problems.append("the evidence does not verify against its signed manifest")
        print("\nChecked on the embedded AWS: " + ("; ".join(problems) if problems else
              "every interface reads back exactly the rule-free isolation group; "
              "both snapshots completed; the evidence verifies against its signed manifest; "
              "the insider's change was put back and recorded with who made it; the incident page "
              "was published."))
        ok = status == "SUCCEEDED" and not problems
        print(f"\nThe report, against make local's stack or a deployment: ec2-quarantine report "
              f"{incident_id} (the page: --html FILE), ec2-quarantine status {incident_id}, "
              f"GET /incidents/{incident_id}/report?format=text|html")
        print("Demo " + ("succeeded." if ok else "FAILED."))
        return 0 if ok else 1
    finally:
        running.stop()


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))  # python -m local.demo [DIR]: the page there, not build/

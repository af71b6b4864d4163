"""Entry points only: the GuardDuty event source, the HTTP routes and the Step Functions steps."""

import logging

from chalice import Chalice, IAMAuthorizer, Rate

from chalicelib import (aws, findings, http, incidents, publish, revocation, securityhub, tamper,
                        workflow)
from chalicelib.steps import (approval, contain, evidence, memory, release as release_steps,
                             report)

app = Chalice(app_name="ec2-quarantine")
app.log.setLevel(logging.INFO)
logging.getLogger("chalicelib").setLevel(logging.INFO)
iam = IAMAuthorizer()


def _home(context) -> tuple[str, str]:
    """(account, region) of this function, from its own ARN (under `chalice local`, which
    gives no ARN: from STS and the configured region)."""
    return aws.home(context.invoked_function_arn)


def _deployed_home(context) -> str:
    """The home account, once the stage is deployed; otherwise NotConfigured raises, naming
    `make deploy`, so Lambda's error metric and failure destination show it (and keep the
    event)."""
    workflow.deployed()
    return _home(context)[0]


def _respond(act):
    """The route's answer: 503 NotConfigured, naming `make deploy`, until the stage is."""
    def checked():
        workflow.deployed()
        return act()
    return http.respond(checked)


def _call() -> tuple[dict, str, str, str]:
    """(JSON body, home account, home region, caller's ARN) of the current request."""
    request = app.current_request
    account, region = _home(app.lambda_context)
    caller = ((request.context or {}).get("identity") or {}).get("userArn") or ""
    return http.parse_json_object(request.raw_body), account, region, caller


@app.on_cw_event(findings.EVENT_PATTERN, name="on_guardduty_finding")
def on_guardduty_finding(event):
    return workflow.handle_finding(event.detail, _deployed_home(event.context))


@app.on_cw_event(securityhub.EVENT_PATTERN, name="on_security_hub_action")
def on_security_hub_action(event):
    account, region = _home(event.context)
    workflow.deployed()
    return workflow.handle_action(event.detail, event.resources, account, region)


@app.on_cw_event(tamper.EVENT_PATTERN, name="on_tampering")
def on_tampering(event):
    return tamper.handle_event(event.detail, _deployed_home(event.context))


@app.schedule(Rate(tamper.SWEEP_MINUTES, unit=Rate.MINUTES), name="sweep")
def sweep(event):
    return tamper.sweep(_deployed_home(event.context))


@app.route("/quarantine", methods=["POST"], authorizer=iam,
           content_types=["application/json", "text/plain"])
def quarantine():
    def act():
        body, account, region, caller = _call()
        return workflow.start(http.quarantine_request(body, account, region, caller), account)
    return _respond(act)


@app.route("/release", methods=["POST"], authorizer=iam,
           content_types=["application/json", "text/plain"])
def release_instance():
    def act():
        body, account, region, caller = _call()
        wanted, reregister = http.release_request(body, account, region, caller)
        return workflow.release(wanted, account, reregister)
    return _respond(act)


def _decision(incident_id: str, decision: str):
    def act():
        body, account, _, caller = _call()
        wanted, reason = http.decision_request(incident_id, body)
        return workflow.decide(wanted, decision, caller, reason, account)
    return _respond(act)


@app.route("/incidents/{incident_id}/approve", methods=["POST"], authorizer=iam,
           content_types=["application/json", "text/plain"])
def approve_incident(incident_id):
    return _decision(incident_id, "approved")


@app.route("/incidents/{incident_id}/deny", methods=["POST"], authorizer=iam,
           content_types=["application/json", "text/plain"])
def deny_incident(incident_id):
    return _decision(incident_id, "denied")


@app.route("/exemptions", methods=["POST"], authorizer=iam,
           content_types=["application/json", "text/plain"])
def grant_exemption():
    def act():
        body, account, region, caller = _call()
        request, expires = http.exemption_request(body, account, region, caller)
        return workflow.grant_exemption(request, expires, account)
    return _respond(act)


@app.route("/exemptions", methods=["GET"], authorizer=iam)
def list_exemptions():
    def act():
        account, _ = _home(app.lambda_context)
        return http.list_exemptions(app.current_request.query_params, lambda limit, start:
                                    workflow.list_exemptions(limit, start, account))
    return _respond(act)


@app.route("/exemptions/{instance_id}", methods=["DELETE"], authorizer=iam,
           content_types=["application/json", "text/plain"])
def revoke_exemption(instance_id):
    def act():
        body, account, region, caller = _call()
        return workflow.revoke_exemption(http.exemption_revocation(
            instance_id, app.current_request.query_params, body, account, region, caller),
            account)
    return _respond(act)


@app.route("/incidents", methods=["GET"], authorizer=iam)
def list_incidents():
    def act():
        account, region = _home(app.lambda_context)
        return http.list_incidents(app.current_request.query_params, account, region,
                                   incidents.search)
    return _respond(act)


@app.route("/incidents/{incident_id}", methods=["GET"], authorizer=iam)
def get_incident(incident_id):
    return _respond(lambda: http.incident(incident_id, incidents.get))


@app.route("/incidents/{incident_id}/report", methods=["GET"], authorizer=iam)
def get_incident_report(incident_id):
    return _respond(lambda: http.incident_report(
        incident_id, app.current_request.query_params, incidents.get))


@app.route("/incidents/{incident_id}/findings", methods=["GET"], authorizer=iam)
def get_incident_findings(incident_id):
    return _respond(lambda: http.incident_findings(
        incident_id, app.current_request.query_params, incidents.get, incidents.further_findings))


@app.lambda_function(name="capture_memory")
def capture_memory_step(event, context):
    return memory.run(event)


@app.lambda_function(name="contain")
def contain_step(event, context):
    return contain.run(event)


@app.lambda_function(name="collect_evidence")
def collect_evidence_step(event, context):
    return evidence.collect(event)


@app.lambda_function(name="check_snapshots")
def check_snapshots_step(event, context):
    return evidence.check(event)


@app.lambda_function(name="approval")
def approval_step(event, context):
    return approval.run(event)


@app.lambda_function(name="release")
def release_step(event, context):
    return release_steps.run(event)


@app.lambda_function(name="report")
def report_step(event, context):
    return report.run(event)


@app.lambda_function(name="revoke_sessions")
def revoke_sessions(event, context):
    return revocation.handle(event, _home(context)[0])


@app.lambda_function(name="publish_page")
def publish_page(event, context):
    return publish.run(event)


@app.lambda_function(name="sync_findings")
def sync_findings(event, context):
    return securityhub.run(event)

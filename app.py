"""Entry points only: the GuardDuty event source, the HTTP routes and the Step Functions steps."""

import logging

from chalice import Chalice, IAMAuthorizer, Response

from chalicelib import findings, http, incidents, report, settings

app = Chalice(app_name="ec2-quarantine")
app.log.setLevel(logging.INFO)
iam = IAMAuthorizer()


@app.on_cw_event(findings.EVENT_PATTERN, name="on_guardduty_finding")
def on_guardduty_finding(event):
    """A GuardDuty finding about an EC2 instance; never raises (a raise would be retried)."""
    try:
        request = findings.parse(event.detail)
    except findings.MalformedFinding as error:
        app.log.warning("dropped finding %s: %s", event.event_id, error)
        return {"decision": "dropped", "reason": str(error)}
    why_not = findings.qualifies(request.finding, settings.get())
    if why_not:
        app.log.info("dropped finding %s on %s: %s", request.finding.id, request.instance_id, why_not)
        return {"decision": "dropped", "reason": why_not}
    app.log.info("finding %s on %s qualifies", request.finding.id, request.instance_id)
    return {"decision": "qualifies", "instance_id": request.instance_id}


@app.route("/incidents/{incident_id}", methods=["GET"], authorizer=iam)
def get_incident(incident_id):
    return http.respond(lambda: http.incident(incident_id, incidents.get))


@app.lambda_function(name="report")
def report_step(event, context):
    return report.detection(event["incident"])

"""API Gateway fidelity: a deployment to an existing stage keeps the stage, and PutRestApi takes
OpenAPI 2.0 (Swagger), both as AWS documents them. Chalice's redeploy of a REST API is
PutRestApi (mode=overwrite, its Swagger 2.0 definition) then CreateDeployment to its stage."""

# CreateDeployment's stage parameters (request name, moto's Stage attribute).
_STAGE_PARAMETERS = (("stageDescription", "description"),
                     ("cacheClusterEnabled", "cache_cluster_enabled"),
                     ("cacheClusterSize", "cache_cluster_size"),
                     ("tracingEnabled", "tracing_enabled"),
                     ("variables", "variables"))


def patch_deployment_to_existing_stage():
    """moto's CreateDeployment with a `stageName` replaces that stage with a new one, dropping
    its access log settings, method settings, tags and tracing, and ignores every stage
    parameter but `variables`. AWS documents deploying "to an existing stage" (the stage then
    serves the new deployment) and its parameters as the stage's ("Specifies whether active
    tracing with X-ray is enabled for the Stage"): keep the stage, point it at the new
    deployment, and set on it the stage parameters the request gives."""
    from moto.apigateway.responses import APIGatewayResponse

    original = APIGatewayResponse.create_deployment

    def create_deployment(self):
        name = self._get_param("stageName")
        api = self.backend.get_rest_api(self.path.replace("/restapis/", "", 1).split("/")[0])
        existing = api.stages.get(name) if name else None
        answer = original(self)
        if name:
            stage = existing or api.stages[name]
            stage.deployment_id = api.stages[name].deployment_id
            for parameter, attribute in _STAGE_PARAMETERS:
                value = self._get_param(parameter)
                if value is not None:
                    setattr(stage, attribute, value)
            if self._get_param("cacheClusterEnabled") is not None:
                stage.cache_cluster_status = (
                    "AVAILABLE" if stage.cache_cluster_enabled else "NOT_AVAILABLE")
            api.stages[name] = stage
        return answer

    APIGatewayResponse.create_deployment = create_deployment


def patch_openapi_2():
    """moto's PutRestApi refuses a Swagger (OpenAPI 2.0) definition ("Only OpenAPI 3.x.x are
    currently supported"), which AWS takes ("API Gateway supports OpenAPI v2.0 and OpenAPI v3.0
    definition files") and Chalice sends. moto's importer reads only `paths` (methods,
    responses, `x-amazon-apigateway-integration`), written alike in both versions: read a 2.0
    definition as 3.0. moto's validator knows only 3.x, so a 2.0 one is not validated."""
    from moto.apigateway.models import APIGatewayBackend

    original = APIGatewayBackend.put_rest_api

    def put_rest_api(self, function_id, api_doc, fail_on_warnings, mode="merge"):
        if api_doc.get("swagger") == "2.0":
            api_doc = {**{k: v for k, v in api_doc.items() if k != "swagger"},
                       "openapi": "3.0.1"}
            fail_on_warnings = False
        return original(self, function_id, api_doc, fail_on_warnings=fail_on_warnings,
                        mode=mode)

    APIGatewayBackend.put_rest_api = put_rest_api


def patch_import_without_description():
    """moto's ImportRestApi reads the definition's `info.description` and fails with a 500
    when it has none; the field is optional in both OpenAPI versions and AWS imports without it
    (Chalice's Swagger has none, so a first `chalice deploy` failed on moto). An import is a
    new API given the definition, as moto does it, with the description when there is one."""
    from moto.apigateway.models import APIGatewayBackend

    def import_rest_api(self, api_doc, fail_on_warnings):
        info = api_doc.get("info") or {}
        api = self.create_rest_api(name=info.get("title"), description=info.get("description"))
        self.put_rest_api(api.id, api_doc, fail_on_warnings=fail_on_warnings)
        return api

    APIGatewayBackend.import_rest_api = import_rest_api

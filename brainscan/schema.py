"""OpenAPI post-processing: the schema says what the API enforces.

Request bodies refuse fields they do not name (brainscan.api.StrictInput), so every request
body's component says `additionalProperties: false`: a client generated from the schema, and
schemathesis, know that `{"taks": "tumour-ct"}` is a 400 rather than a case for the default
question.
"""

from drf_spectacular.hooks import postprocess_schema_enums


def postprocess(result, generator, **kwargs):
    result = postprocess_schema_enums(result, generator, **kwargs)
    components = result.get("components", {}).get("schemas", {})
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for media in operation.get("requestBody", {}).get("content", {}).values():
                ref = media.get("schema", {}).get("$ref", "")
                component = components.get(ref.rsplit("/", 1)[-1]) if ref else None
                if component and component.get("type") == "object":
                    component["additionalProperties"] = False
    return result

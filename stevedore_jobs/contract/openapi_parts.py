"""The pieces the OpenAPI description (stevedore_jobs/contract/openapi.py) is built of: references,
answers every request may get (the door's, auth's), and how an operation, its parameters and its
answers are written."""
from stevedore_jobs.contract import principals as pr
from stevedore_jobs.contract.checks import ID_PATTERN, MAX_JSON_DEPTH, NO_CONTROL

VERSION = "0.1.0"
REF = "#/components/schemas/{model}"


def ref(name):
    return {"$ref": REF.format(model=name)}


def json_content(schema):
    return {"application/json": {"schema": schema}}


def error(description, **headers):
    answer = {"description": description, "content": json_content(ref("Error"))}
    if headers:
        answer["headers"] = {name: {"schema": {"type": kind}, "description": text}
                             for name, (kind, text) in headers.items()}
    return answer


def header(kind, description):
    return {"schema": {"type": kind}, "description": description}


# what any request may be answered, before or beside what its endpoint does (docs/api.md "Errors")
DOOR = {
    "400": error("invalid request: the message names the field (a path value or query parameter with "
                 "control characters included)"),
    "408": error("the request's head or body took too long"),
    "413": error("the body is over HTTP_MAX_BODY_BYTES"),
    "414": error("the request line is 8 KiB or more"),
    "429": error("this client made more requests than HTTP_RATE_LIMIT / HTTP_RATE_BURST allow (`rate: ...`), or its "
                 "address failed HTTP_AUTH_FAILURES tokens or sign-ins within HTTP_AUTH_WINDOW (`authorization: ...`: "
                 "its tokens and sign-ins are refused meanwhile): TOO_MANY_REQUESTS, try again after Retry-After; or "
                 "the address has too many connections open (TOO_MANY_CONNECTIONS)",
                 **{"Retry-After": ("integer", "seconds (not sent with TOO_MANY_CONNECTIONS)")}),
    "431": error("the headers are over HTTP_MAX_HEADER_BYTES"),
    "503": error("the gateway holds HTTP_MAX_CONNECTIONS connections, or a service does not answer"),
}
AUTH = {"401": error("no valid API token (or sign-in session)",
                     **{"WWW-Authenticate": ("string", 'Bearer realm="stevedore"')})}
FORBIDDEN = {"403": error("the caller's role does not allow it (the message names the role's limit), or a "
                          "member or viewer named another team than its own (X-Stevedore-Team, ?team=)")}
CROSS_SITE = {"403": error("the caller's role does not allow it, a member or viewer named another team, or a "
                           "cross-site request with the sign-in cookie")}
TEAM_HEADER = {"name": pr.TEAM_HEADER, "in": "header", "required": False,
               "description": "the team an admin or operator acts for (lists: only its; new things: its); "
                              "a member or viewer may name only its own (another: 403)",
               "schema": {"type": "string", "minLength": 1, "maxLength": pr.TEAM_MAX,
                          "pattern": pr.TEAM_PATTERN}}
LINK = {"Link": header("string", 'the next page: </result/?limit=100&after=ID&after_key=KEY>; rel="next" (only when '
                                'more exist; a page may hold fewer than limit items when their JSON passes '
                                'LIST_PAGE_BYTES; after_key, given by lists sorted by a time or a name, lets the '
                                'next page go on where the item was should it be deleted meanwhile)')}


def location(what):
    return {"Location": header("string", f"the {what}'s path")}


def not_found(what):
    return {"404": error(f"no such {what}")}


UNKNOWN_AFTER = not_found("item to list after (`after`)")


def conflict(when):
    return {"409": error(when)}


def json_value(depth):
    """The name of the schema of a JSON value at ``depth`` in a body (the body is 1, its fields' values 2)."""
    return "JSONValue" if depth == 2 else f"JSONValueAtDepth{depth}"


def json_values():
    """Any JSON value whose strings (keys too) hold no control character, nested as deep as a body may.

    Written level by level rather than as one recursive schema: openapi-python-client cannot parse
    a union that refers to itself, and the levels also state the gateway's depth limit
    (MAX_JSON_DEPTH): at the last level an array or object must be empty.
    """
    schemas = {}
    for depth in range(2, MAX_JSON_DEPTH + 1):
        deeper = {"$ref": REF.format(model=json_value(depth + 1))} if depth < MAX_JSON_DEPTH else None
        # the items' schema under allOf: openapi-python-client (which reads `items` only) then writes a plain
        # list, not loops nested as deep as the levels (Python allows 20 nested blocks)
        array = {"type": "array", "items": {}, **({"allOf": [{"items": deeper}]} if deeper else {"maxItems": 0})}
        thing = {"title": f"JSONObjectAtDepth{depth}", "type": "object", "propertyNames": {"pattern": NO_CONTROL}}
        thing.update({"additionalProperties": deeper} if deeper else {"maxProperties": 0})
        schemas[json_value(depth)] = {
            "description": f"any JSON value whose strings (keys too) hold no control character, at level {depth} "
                           f"of a body that nests at most {MAX_JSON_DEPTH} levels",
            "anyOf": [{"type": "string", "pattern": NO_CONTROL}, {"type": "number"}, {"type": "boolean"},
                      {"type": "null"}, array, thing]}
    return schemas


def _drop_null(schema):
    """A query parameter's schema: a value is either given or not, never null."""
    schema = {key: value for key, value in schema.items() if key not in ("default", "title")}
    options = [option for option in schema.pop("anyOf", []) if option.get("type") != "null"]
    if options:
        schema.update(options[0] if len(options) == 1 else {"anyOf": options})
    return schema


def query_parameters(model):
    schema = model.model_json_schema()
    return [{"name": name, "in": "query", "required": False, "schema": _drop_null(prop),
             **({"description": prop["description"]} if "description" in prop else {})}
            for name, prop in schema["properties"].items()]


def path_ids(*names):
    # an id of another shape is a 404 like an unknown one
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": ID_PATTERN}}
            for name in names]


def body(schema):
    return {"required": True, "content": json_content(schema)}


def operation(summary, responses, parameters=(), request=None, public=False, changes=False):
    op = {"summary": summary, "parameters": list(parameters) + ([] if public else [TEAM_HEADER]),
          "responses": {**responses, **DOOR, **({} if public else {**AUTH, **FORBIDDEN}),
                        **(CROSS_SITE if changes and not public else {})}}
    if request is not None:
        op["requestBody"] = body(request)
    if public:
        op["security"] = []
    if not op["parameters"]:
        del op["parameters"]
    return op


def ok(description, schema, status="200", **headers):
    answer = {"description": description, "content": json_content(schema)}
    if headers:
        answer["headers"] = headers
    return {status: answer}


def array(name):
    return {"type": "array", "items": ref(name)}

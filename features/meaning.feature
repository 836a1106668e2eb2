@needs:fresh-stack
Feature: One request, one meaning
  A request that could mean two things (one to the gateway, which routes and
  checks it, another to the service, which reads it) gets one meaning before
  it is routed: its path normalised, exactly one valid Host, at most one
  credential, no header name that a service could read as another; or a 400.
  Credentials and forwarding headers reach a service only as the gateway
  vouches for them. Requests are sent as raw HTTP/1.1 where an HTTP client
  would tidy them up first; echo upstreams show what reached each service.

  Background:
    Given a fresh stack with echo upstreams behind this routes file:
      """
      jwks_service = "auth"

      [[services]]
      name = "auth"

      [[services]]
      name = "open"

      [[services]]
      name = "locked"

      [[services]]
      name = "api"

      [[services]]
      name = "hosted"

      [[routes]]
      prefix = "/auth"
      service = "auth"
      pass_credentials = true

      [[routes]]
      prefix = "/open"
      service = "open"

      [[routes]]
      prefix = "/locked"
      service = "locked"
      identity = "required"

      [[routes]]
      prefix = "/api"
      service = "api"
      strip_prefix = true

      [[routes]]
      prefix = "/hosted"
      host = "public.example"
      service = "hosted"
      """

  Scenario Outline: A path is routed by what it means, not by how it is written: <written>
    When the raw request "GET <path> HTTP/1.1" is sent
    Then the status is 401
    And the header "WWW-Authenticate" is "Bearer"
    And echo upstream "open" received nothing
    And echo upstream "locked" received nothing

    Examples:
      | written                                     | path                  |
      | a dot segment out of an open route          | /open/../locked/x     |
      | an escaped dot segment out of an open route | /open/%2e%2e/locked/x |
      | a repeated slash                            | //locked/x            |
      | an escaped unreserved letter                | /%6cocked/x           |

  Scenario: A dot segment after a stripped prefix is resolved before the prefix is stripped
    When the raw request "GET /api/x/../admin/y HTTP/1.1" is sent
    Then the status is 200
    And echo upstream "api" received exactly these requests:
      | method | path     |
      | GET    | /admin/y |

  Scenario: An absolute-form request's authority is the Host the service reads
    When the raw request "GET http://public.example/hosted/x HTTP/1.1" is sent with headers:
      | Host | evil.example |
    Then the status is 200
    And echo upstream "hosted" received "Host: public.example"
    And echo upstream "hosted" received "X-Forwarded-Host: public.example"

  Scenario: Two Host headers are refused, not routed by one and read by the service as the other
    When the raw request "GET /hosted/x HTTP/1.1" is sent with headers:
      | Host | public.example |
      | Host | evil.example   |
    Then the status is 400
    And the JSON at "/error" is "bad_host"
    And echo upstream "hosted" received nothing

  Scenario: A Host with userinfo is refused, not routed by the part before the @
    When the raw request "GET /hosted/x HTTP/1.1" is sent with headers:
      | Host | public.example:80@evil.example |
    Then the status is 400
    And the JSON at "/error" is "bad_host"
    And echo upstream "hosted" received nothing

  Scenario: Header names with underscores never reach a service, in any spelling
    When the raw request "GET /open/x HTTP/1.1" is sent with headers:
      | X_User_Id       | admin       |
      | X-User_Id       | admin       |
      | X_Forwarded_For | 203.0.113.7 |
      | X-Probe         | passed-on   |
    Then the status is 200
    And echo upstream "open" received "X-Probe: passed-on"
    And echo upstream "open" received no header with an underscore in its name
    And echo upstream "open" received none of the headers X-User-Id, X_User_Id, X-User_Id
    And echo upstream "open" received the client's address as X-Forwarded-For

  Scenario: A second Authorization beside a valid one is refused, not guessed between
    Given a logged-in user "una"
    When the raw request "GET /locked/x HTTP/1.1" is sent as "una" by bearer with headers:
      | Authorization | Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1X2FkbWluIn0. |
    Then the status is 400
    And the JSON at "/error" is "ambiguous_credentials"
    And echo upstream "locked" received nothing

  Scenario: A route without identity receives no credential; a verified route only the verified token
    Given a logged-in user "una"
    When I GET /open/x as "una" by session with header "Cookie: theme=dark"
    Then the status is 200
    And echo upstream "open" received no credential
    And echo upstream "open" received "Cookie: theme=dark"
    When I GET /open/x as "una" by bearer
    Then the status is 200
    And echo upstream "open" received no credential
    When I GET /locked/x as "una" by session
    Then the status is 200
    And echo upstream "locked" received "Authorization: Bearer" with the JWT of "una"'s session in Redis
    And echo upstream "locked" received no SESSION cookie

  Scenario: What a client says of where it connects from is replaced by what the gateway saw
    When the raw request "GET /open/x HTTP/1.1" is sent with headers:
      | Host              | public.example              |
      | X-Real-IP         | 203.0.113.9                 |
      | X-Forwarded-For   | 203.0.113.9                 |
      | X-Forwarded-Host  | evil.example                |
      | X-Forwarded-Proto | https                       |
      | Forwarded         | for=203.0.113.9;proto=https |
    Then the status is 200
    And echo upstream "open" received the client's address as X-Real-IP and X-Forwarded-For
    And echo upstream "open" received "X-Forwarded-Host: public.example"
    And echo upstream "open" received "X-Forwarded-Proto: http"
    And echo upstream "open" received none of the headers Forwarded

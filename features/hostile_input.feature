Feature: Hostile input
  Bad input gets a 4xx with a JSON reason, never a 500, and the gateway keeps serving.

  Background:
    Given a running stack
    And a logged-in user "mal"

  Scenario: Spoofed identity headers do not make anyone someone else
    When I GET /users/me as "mal" by bearer with header "X-User-Id: u_admin"
    Then the status is 200
    And the answer names "mal" and comes from a user instance
    When I GET /users/me with header "X-User-Id: u_admin"
    Then the answer is 401 with a Bearer challenge

  Scenario Outline: Oversized and malformed requests are refused with a reason
    When an anonymous caller sends <request>
    Then the answer is <status> with a JSON error

    Examples:
      | request                                | status |
      | a login with malformed JSON            | 400    |
      | a login with wrongly typed fields      | 400    |
      | a registration with a 70 KiB body      | 413    |
      | a request with 20 KiB of headers       | 431    |
      | a request to an unknown route          | 404    |

  Scenario: A registration without a password, a login that is not JSON and a GET of the login route are refused with a reason
    When I POST /auth/register with JSON {"username": "nopass"}
    Then the answer is 400 with a JSON error
    When I POST /auth/login with header "Content-Type: text/plain" with body:
      """
      {"username": "a", "password": "b"}
      """
    Then the answer is 415 with a JSON error
    When I GET /auth/login
    Then the answer is 405 with a JSON error

  @needs:fresh-stack
  Scenario: Hostile input never makes the auth or user routes answer a 5xx
    Given a fresh stack with 1 user instance
    And a logged-in user "eve"
    When an anonymous caller sends a login with malformed JSON
    And an anonymous caller sends a login with wrongly typed fields
    And an anonymous caller sends a registration with a 70 KiB body
    And an anonymous caller sends a request with 20 KiB of headers
    And an anonymous caller sends a request to an unknown route
    And I POST /auth/register with JSON {"username": "nopass"}
    And I GET /auth/login
    And "eve" calls /users/me with a token that is signed with alg none
    And "eve" calls /users/me with a token that is 10 KB long
    And I GET /users/me with header "Cookie: SESSION=../../etc"
    And I GET /users/me with header "X-User-Id: u_admin"
    Then GET /healthz answers 200
    And GET /users/me as "eve" by session answers 200
    And the admin metric "gantry_gateway_requests_total{route=\"auth\",status=\"5xx\"}" is 0
    And the admin metric "gantry_gateway_requests_total{route=\"user\",status=\"5xx\"}" is 0
    And the admin metric "gantry_gateway_requests_total{route=\"auth\",status=\"4xx\"}" is at least 5

  Scenario: The gateway stays healthy after hostile input
    When an anonymous caller sends a request with 20 KiB of headers
    And an anonymous caller sends a login with malformed JSON
    Then GET /healthz answers 200
    And GET /users/me as "mal" by session answers 200

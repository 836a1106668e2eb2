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

  Scenario: The gateway stays healthy after hostile input
    When an anonymous caller sends a request with 20 KiB of headers
    And an anonymous caller sends a login with malformed JSON
    Then GET /healthz answers 200
    And GET /users/me as "mal" by session answers 200

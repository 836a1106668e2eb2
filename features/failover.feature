Feature: Failover
  A dead or hung instance costs callers nothing: the gateway ejects it and
  retries idempotent requests on another. Ejected means it is left alone for
  a while (1 s, doubling with each failure in a row), not tried on every request.

  @needs:fresh-stack @serial
  Scenario: SIGKILL of one of three instances under load fails no request
    Given a fresh stack with 3 user instances
    And a logged-in user "fay"
    When "fay" loads /users/me with 8 concurrent callers for 10 seconds, and user instance 2 is killed after 3 seconds
    Then no request failed
    And user instance 2 leaves the passing set within its TTL
    When user instance 2 starts again
    Then user instance 2 takes traffic again

  @needs:fresh-stack @serial
  Scenario: A hung instance costs at most the request timeout and fails nothing
    Given a fresh stack with 3 user instances and a request timeout of 1 second
    And a logged-in user "hugh"
    When "hugh" loads /users/me with 4 concurrent callers for 5 seconds, and user instance 2 is paused after 1 second
    Then no request failed
    And no request took longer than twice the request timeout
    When user instance 2 resumes
    Then user instance 2 takes traffic again

  @needs:fresh-stack
  Scenario: An instance that fails every request while its check passes is ejected, not tried on every request
    Given a fresh stack with 1 user instance
    And a logged-in user "ezra"
    And echo upstreams "echo-1" and "echo-2" are the only instances of "user"
    When echo upstream "echo-2" starts closing every connection while its check keeps passing
    And "ezra" sends 100 requests to /users/me one at a time
    Then every answer is 200
    And echo upstream "echo-2" was tried at least once, and no more often than the gateway's ejection backoff allows
    And the gateway's /metrics counted the ejection of an instance of "user"
    And the registry lists "echo-2" of "user" as passing

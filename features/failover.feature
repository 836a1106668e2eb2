Feature: Failover
  A dead or hung instance costs callers nothing: the gateway ejects it and
  retries idempotent requests on another. Ejected means it is left alone for
  a while (1 s, doubling with each failure in a row), not tried on every request.

  @needs:fresh-stack @serial
  Scenario: SIGKILL of one of three instances under load fails no request
    Given a fresh stack with 3 user instances
    And a logged-in user "fay"
    When 3000 requests are sent to /users/me with 8 concurrent callers as "fay" while instance 2 of "user" is killed
    Then no request failed
    # Its check's TTL is 2 s; the load ran on after the kill.
    And instance 2 of "user" is not passing in the registry within 3 seconds
    When instance 2 of "user" starts again
    Then instance 2 of "user" is passing in the registry within 30 seconds
    And user instance 2 takes traffic again

  @needs:fresh-stack @serial
  Scenario: After SIGKILL of one of three instances a lone caller never meets it: it is retried around, ejected, and back soon after it passes again
    Given a fresh stack with 3 user instances
    And a logged-in user "kim"
    When 30 requests are sent to /users/me with 1 concurrent caller as "kim"
    Then every answer is 200
    When instance 2 of "user" is killed
    And 60 requests are sent to /users/me with 1 concurrent caller as "kim"
    Then every answer is 200
    And no answer came from instance 2 of "user"
    And the admin metric "gantry_gateway_upstream_retries_total{service=\"user\"}" is at least 1
    And the admin metric "gantry_gateway_upstream_ejections_total{service=\"user\",detector=\"consecutive_local_origin_failure\"}" is at least 1
    And instance 2 of "user" is not passing in the registry within 15 seconds
    When instance 2 of "user" starts again
    Then instance 2 of "user" is passing in the registry within 30 seconds
    And GET /users/me as "kim" by bearer is answered by instance 2 of "user" within 5 seconds

  @needs:fresh-stack @serial
  Scenario: A hung instance costs at most the request timeout and fails nothing
    Given a fresh stack with 3 user instances and a request timeout of 1 second
    And a logged-in user "hugh"
    When 600 requests are sent to /users/me with 4 concurrent callers as "hugh" while instance 2 of "user" is paused
    Then no request failed
    And no request took longer than twice the request timeout
    When instance 2 of "user" resumes
    Then instance 2 of "user" is passing in the registry within 30 seconds
    And user instance 2 takes traffic again

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

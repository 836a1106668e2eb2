Feature: Load balancing
  Requests are spread evenly across the passing instances, new instances get
  traffic as soon as they pass, and deregistered ones get none, nor do ones
  whose check is critical, however well their process still answers.

  @needs:fresh-stack @serial
  Scenario: Three instances share 3,000 requests evenly
    Given a fresh stack with 3 user instances
    And a logged-in user "bal"
    When 3000 requests are sent to /users/me with 8 concurrent callers as "bal"
    Then every answer is 200
    And the answers are spread evenly over 3 instances by a chi-square test

  @needs:fresh-stack @serial
  Scenario: Round robin gives one caller's requests to three instances in strict turn, over kept-alive connections
    Given a fresh stack with 3 user instances where GANTRY_LB is round_robin and GANTRY_WORKERS is 2
    And a logged-in user "rita"
    When 90 requests are sent to /users/me with 1 concurrent caller as "rita"
    Then every answer is 200
    And the answers came from 3 instances
    # 30 each: 29 of 90 is 32.2 %, 31 is 34.4 %.
    And instance 1 of "user" answered at least 33% of the requests
    And instance 1 of "user" answered at most 34% of the requests
    And instance 2 of "user" answered at least 33% of the requests
    And instance 2 of "user" answered at most 34% of the requests
    And instance 3 of "user" answered at least 33% of the requests
    And instance 3 of "user" answered at most 34% of the requests
    # A connection per instance and gateway worker at most, not one per request.
    And the admin metric "gantry_gateway_upstream_connects_total{service=\"user\"}" is at least 3
    And the admin metric "gantry_gateway_upstream_connects_total{service=\"user\"}" is at most 6

  @needs:fresh-stack @serial
  Scenario: Power of two choices spreads requests evenly too
    Given a fresh stack with 3 user instances where GANTRY_LB is p2c
    And a logged-in user "pat"
    When 600 requests are sent to /users/me with 1 concurrent caller as "pat"
    Then every answer is 200
    And the answers are spread evenly over 3 instances by a chi-square test

  @needs:fresh-stack @serial
  Scenario: A new instance gets traffic once it passes
    Given a fresh stack with 3 user instances
    And a logged-in user "newt"
    When a 4th user instance starts and passes its health check
    Then it answers requests soon after it passed

  @needs:fresh-stack @serial
  Scenario: A deregistered instance gets no traffic
    Given a fresh stack with 3 user instances
    And a logged-in user "dee"
    When user instance 2 stops gracefully
    And 300 requests are sent to /users/me with 4 concurrent callers as "dee"
    Then every answer is 200
    And no answer came from instance 2 of "user"
    And the gateway never tried user instance 2

  @needs:fresh-stack
  Scenario: An instance whose check fails gets no traffic while it still answers, and gets it back when it passes
    Given a fresh stack with 1 user instance
    And a logged-in user "hal"
    And echo upstreams "echo-1" and "echo-2" are the only instances of "user"
    When the registry check of echo upstream "echo-2" fails
    Then the registry lists "echo-2" of "user" as critical
    And the gateway drops "echo-2" from its instances of "user"
    When "hal" sends 50 requests to /users/me one at a time
    Then every answer is 200
    And echo upstream "echo-2" received none of them
    And echo upstream "echo-1" received all of them
    And echo upstream "echo-2" still answers when called directly
    When the registry check of echo upstream "echo-2" passes again
    Then the registry lists "echo-2" of "user" as passing
    And echo upstream "echo-2" takes traffic again

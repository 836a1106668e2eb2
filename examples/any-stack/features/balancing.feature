Feature: Balancing over instances the registry lists
  Neither service registers itself: the harness registers every instance
  with an HTTP check the registry runs. The gateway spreads requests over
  the passing ones; each instance names itself in X-Served-By.

  @needs:registry
  Scenario: Requests to the greeter are spread evenly over its 3 instances
    Given a new user "bob" is logged in
    Then "greeter" has 3 passing instances in the registry
    When 300 requests are sent to /greet/hello with 6 concurrent callers as "bob"
    Then every answer is 200
    And the answers are spread evenly over 3 instances by a chi-square test

  @needs:registry
  Scenario: Requests to the notes service are spread evenly over its 2 instances
    Given a new user "nina" is logged in
    Then "notes" has 2 passing instances in the registry
    When 200 requests are sent to /notes with 4 concurrent callers as "nina"
    Then every answer is 200
    And the answers are spread evenly over 2 instances by a chi-square test

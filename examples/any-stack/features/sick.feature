Feature: Sick greeters
  A greeter that answers 503 to everything, or drops its connections
  mid-answer, is sick rather than dead: its registry check still passes.
  The gateway sets it aside by itself (outlier detection) and retries the
  GETs it spoiled on another greeter. The faults come from the fault proxy's
  link in front of each instance (`[infra] fault_links = true`).

  @needs:process
  Scenario: A greeter answering 503 to everything is ejected and costs callers nothing
    Given a new user "gil" is logged in
    When instance 2 of "greeter" answers 503 to every request
    And 300 requests are sent to /greet/hello with 4 concurrent callers as "gil"
    Then no request failed
    And instance 2 of "greeter" is passing in the registry
    And the admin metric "gantry_gateway_upstream_ejections_total{service=\"greeter\",detector=\"consecutive_5xx\"}" is at least 1
    When instance 2 of "greeter" heals
    Then GET /greet/hello as "gil" is answered by instance 2 of "greeter" within 30 seconds

  @needs:process
  Scenario: A greeter resetting its connections mid-answer: every GET is retried on another
    Given a new user "ros" is logged in
    When instance 3 of "greeter" resets connections mid-response
    And 150 requests are sent to /greet/hello with 3 concurrent callers as "ros"
    Then no request failed
    When instance 3 of "greeter" heals
    Then GET /greet/hello as "ros" is answered by instance 3 of "greeter" within 30 seconds

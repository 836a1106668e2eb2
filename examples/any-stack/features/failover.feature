Feature: Failover under SIGKILL
  A greeter killed mid-load costs callers nothing: the gateway retries on
  another instance. The registry's check notices it is gone; once it runs
  again, the check passes and it gets traffic again.

  @needs:process
  Scenario: One of three greeters is killed under load
    Given a new user "fay" is logged in
    When 600 requests are sent to /greet/hello with 8 concurrent callers as "fay" while instance 2 of "greeter" is killed
    Then no request failed
    And instance 2 of "greeter" is critical in the registry within 10 seconds
    When instance 2 of "greeter" starts again
    Then instance 2 of "greeter" is passing in the registry within 30 seconds
    And GET /greet/hello as "fay" is answered by instance 2 of "greeter" within 40 seconds

  # notes asks the greeter through the gateway (GATEWAY_URL = "{gateway}" in
  # stack.toml), so one service's call to another is balanced and retried
  # too: had it called one greeter's address, this kill would fail it.
  @needs:process
  Scenario: A service calling another through the gateway survives a greeter's death
    Given a new user "gus" is logged in
    When I GET /notes/greeting as "gus"
    Then the status is 200
    And the JSON at "/greeting/hello" is "{gus.username}"
    When 200 requests are sent to /notes/greeting with 4 concurrent callers as "gus" while instance 1 of "greeter" is killed
    Then no request failed
    When instance 1 of "greeter" starts again
    Then GET /greet/hello as "gus" is answered by instance 1 of "greeter" within 40 seconds

Feature: Sessions
  A SESSION cookie is looked up in Redis, cached briefly in the gateway, and
  revoked everywhere at once by logout.

  @managed @serial
  Scenario: The gateway does not ask Redis for every request
    Given a running stack
    And a logged-in user "sam"
    When "sam" calls /users/me 200 times by session
    Then every answer is 200
    And Redis saw at most 5 session lookups for them

  @managed @fresh
  Scenario: Logout is seen by every gateway before any cache could expire
    Given a fresh stack with 1 user instance and 2 gateways
    And a logged-in user "gus"
    And "gus" gets 200 from /users/me by session on every gateway
    When "gus" logs out by session on the first gateway
    Then the second gateway refuses the session of "gus" well before the session cache expires

  @managed @fresh
  Scenario: An expired session is 401
    Given a fresh stack with 1 user instance and sessions that last 2 seconds
    And a logged-in user "eva"
    When the session of "eva" expires in Redis
    Then "eva" gets 401 from /users/me by session

  Scenario: Logout revokes both the session and the token
    Given a running stack
    And a logged-in user "lou"
    When "lou" logs out by session
    Then "lou" gets 401 from /users/me by session
    And "lou" gets 401 from /users/me by bearer

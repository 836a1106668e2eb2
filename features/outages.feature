Feature: Outages of Redis and the registry
  Sessions fail closed without Redis while bearer tokens keep working; without
  the registry the gateway serves from its last snapshot.

  @needs:fresh-stack
  Scenario: Redis down, then back
    Given a fresh stack with 1 user instance
    And a logged-in user "rex"
    And GET /users/me as "rex" by session answers 200
    When instance 1 of "redis" is stopped
    Then GET /users/me as "rex" by session answers 503 within 15 seconds
    And the JSON at "/error" is "session_store_unavailable"
    And GET /users/me as "rex" by bearer answers 200
    When instance 1 of "redis" starts again
    Then GET /users/me as "rex" by session answers 200 within 15 seconds

  @needs:fresh-stack
  Scenario: Registry down, then back
    Given a fresh stack with 2 user instances
    And a logged-in user "reg"
    When instance 1 of "registry" is killed
    And 100 requests are sent to /users/me with 4 concurrent callers as "reg"
    Then every answer is 200
    And the answers came from 2 instances
    When instance 1 of "registry" starts again
    Then "user" has 2 passing instances in the registry within 30 seconds
    When a 3rd user instance starts and passes its health check
    Then it answers requests soon after it passed

Feature: Outages of Redis and the registry
  Sessions fail closed without Redis while bearer tokens keep working; without
  the registry the gateway serves from its last snapshot.

  @needs:fresh-stack
  Scenario Outline: Redis <fault>, then back: sessions fail closed with Retry-After, bearers keep working, an unread profile is a clear 503
    Given a fresh stack with 1 user instance
    And a logged-in user "rex"
    And GET /users/me as "rex" by session answers 200
    And GET /users/me as "rex" by bearer answers 200
    When instance 1 of "redis" <fault>
    # The gateway notices the lost revocation feed (pinged every second) and
    # drops its cached sessions: every session request must ask Redis.
    Then GET /users/me as "rex" by session answers 503 within 10 seconds
    And the header "Retry-After" exists
    And the JSON at "/error" is "session_store_unavailable"
    And the JSON at "/message" exists
    # Verified at the edge without Redis; the profile was read before.
    And GET /users/me as "rex" by bearer answers 200
    And GET /users/u_unseen as "rex" by bearer answers 503
    And the JSON at "/error" is "profile_store_unavailable"
    When instance 1 of "redis" starts again
    Then GET /readyz answers 200 within 15 seconds
    And GET /users/me as "rex" by session answers 200 within 15 seconds

    Examples:
      | fault      |
      | is killed  |
      | is stopped |

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

Feature: Revocation
  Logout ends the session and its token everywhere: the gateway itself
  refuses them, whoever presents them. The threat is a stolen cookie or token
  replayed after its owner logged out, so these scenarios replay copies of the
  old values (the owner's client, like a browser, drops the cookie logout
  clears), on every gateway, by cookie and by bearer. A 401 counts only when
  the gateway gave it: services behind a gateway need not check revocations.

  Scenario Outline: Logout by <way> revokes both the session and the token
    Given a running stack
    And a logged-in user "lou"
    And "lou" gets 200 from /users/me by session and by bearer on every gateway
    When "lou" logs out by <way>
    Then every gateway refuses the old session of "lou" at once
    And every gateway refuses the old token of "lou" at once

    Examples:
      | way     |
      | session |
      | bearer  |

  @needs:fresh-stack
  Scenario Outline: Logout by <way> is seen by every gateway before any cache could expire
    Given a fresh stack with 1 user instance and 2 gateways
    And a logged-in user "gus"
    And "gus" gets 200 from /users/me by session and by bearer on every gateway
    When "gus" logs out by <way>
    Then every gateway refuses the old session of "gus" at once
    And every gateway refuses the old token of "gus" at once

    Examples:
      | way     |
      | session |
      | bearer  |

  @needs:fresh-stack
  Scenario: A gateway that starts after a logout refuses the revoked session and token
    Given a fresh stack with 1 user instance
    And a logged-in user "rex"
    And a logged-in user "ida"
    And "rex" gets 200 from /users/me by session and by bearer on every gateway
    When "rex" logs out by session
    And gateway 1 restarts
    And a new gateway starts
    Then every gateway refuses the old session of "rex" at once
    And every gateway refuses the old token of "rex" at once
    But "ida" gets 200 from /users/me by session and by bearer on every gateway

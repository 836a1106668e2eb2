Feature: Trust: only holders of the stack's secrets steer traffic or read sessions
  The registry decides where the gateway sends requests, and Redis holds every
  session. Both refuse anyone without the secret the stack generated for them:
  the registry's ACL token (given to services as CONSUL_HTTP_TOKEN) and Redis's
  password (carried in REDIS_URL).

  @needs:fresh-stack
  Scenario: A registration without the registry token is refused and the rogue address never receives traffic
    Given a fresh stack with 1 user instance
    And a logged-in user "trudy"
    And a rogue server that counts the connections it receives
    When someone without the registry token registers the rogue server as "user-1" of "user"
    And someone without the registry token registers the rogue server as "user-9" of "user"
    And 30 requests are sent to /users/me with 3 concurrent callers as "trudy"
    Then the registry refused each of them with 403 "Permission denied"
    And the registry still lists only the real "user-1" for "user"
    And someone without the registry token sees no instance of "user"
    And every answer is 200
    And the rogue server received no connection

  @needs:redis
  Scenario: Redis refuses a client without the password
    Given a running stack
    Then Redis refuses a client without the password or with a wrong one
    And Redis answers a client with the password from REDIS_URL

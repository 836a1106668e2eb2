@needs:fresh-stack
Feature: What a routes file promises
  A routes file says which service a request reaches and what the gateway
  asks of it on the way: the longest matching prefix wins, whatever the order
  of the file; a route's methods are the only ones it takes; a stripped prefix
  is not seen by the service; identity is none, optional or required; the
  verified caller is passed on as X-User-Id and X-Username only when the route
  asks, and a client's copies never are. A reload puts a new file in force for
  the next request, and a file with a mistake is refused whole, the routes in
  force staying. Echo upstreams behind each service show what reached it. In
  the file below, "/shop" is declared before the longer "/shop/orders", and
  the services named there besides auth are echo upstreams.

  Background:
    Given a fresh stack with echo upstreams behind this routes file:
      """
      jwks_service = "auth"

      [[services]]
      name = "auth"

      [[services]]
      name = "catalog"

      [[services]]
      name = "orders"

      [[services]]
      name = "accounts"

      [[routes]]
      prefix = "/shop"
      service = "catalog"

      [[routes]]
      prefix = "/shop/orders"
      service = "orders"
      methods = ["GET", "POST"]

      [[routes]]
      prefix = "/v1"
      service = "catalog"
      strip_prefix = true

      [[routes]]
      prefix = "/auth"
      service = "auth"
      pass_credentials = true

      [[routes]]
      prefix = "/open"
      service = "accounts"

      [[routes]]
      prefix = "/maybe"
      service = "accounts"
      identity = "optional"
      identity_headers = true

      [[routes]]
      prefix = "/locked"
      service = "accounts"
      identity = "required"

      [[routes]]
      prefix = "/me"
      service = "accounts"
      identity = "required"
      identity_headers = true
      """

  Scenario: The longest matching prefix wins, whatever the order of the file, and prefixes match whole segments
    When I GET /shop/orders/42
    Then the answer came from echo upstream "orders" and is what it received
    When I GET /shop/items/7
    Then the answer came from echo upstream "catalog" and is what it received
    When I GET /shop/ordersx
    Then the answer came from echo upstream "catalog" and is what it received
    And echo upstream "orders" received exactly these requests:
      | method | path            |
      | GET    | /shop/orders/42 |

  Scenario: A route takes only its methods; another gets 405 with Allow, not the shorter route
    When I POST /shop/orders with JSON {"item": 7}
    Then the answer came from echo upstream "orders" and is what it received
    When I DELETE /shop/orders/42
    Then the status is 405
    And the header "Allow" is "GET, POST"
    And the JSON at "/error" is "method_not_allowed"
    And echo upstream "orders" received exactly these requests:
      | method | path         |
      | POST   | /shop/orders |
    And echo upstream "catalog" received nothing

  Scenario: A stripped prefix is not in the path the service sees; the query is
    When I GET /v1/items/7?colour=red
    Then the answer came from echo upstream "catalog" and is what it received
    When I GET /v1
    Then the status is 200
    And echo upstream "catalog" received exactly these requests:
      | method | path                |
      | GET    | /items/7?colour=red |
      | GET    | /                   |

  Scenario: Identity "none" verifies nothing and passes no credential on
    When I GET /open/x
    Then the answer came from echo upstream "accounts" and is what it received
    When I GET /open/x with header "Authorization: Bearer not-a-token"
    Then the answer came from echo upstream "accounts" and is what it received
    And echo upstream "accounts" received no credential

  Scenario: Identity "optional" lets a caller without credentials through, verifies any that are presented
    Given a logged-in user "olga"
    When I GET /maybe/x with header "X-User-Id: u_admin"
    Then the answer came from echo upstream "accounts" and is what it received
    And echo upstream "accounts" received none of the headers X-User-Id, X-Username, Authorization
    When I GET /maybe/x as "olga" by bearer
    Then the answer came from echo upstream "accounts" and is what it received
    And echo upstream "accounts" received the X-User-Id and X-Username of "olga"
    When I GET /maybe/x with header "Authorization: Bearer not-a-token"
    Then the status is 401
    And the header "WWW-Authenticate" is "Bearer"
    And echo upstream "accounts" received exactly these requests:
      | method | path     |
      | GET    | /maybe/x |
      | GET    | /maybe/x |

  Scenario: Identity "required" answers 401 without a valid token or session, and passes on only the verified token
    Given a logged-in user "rita"
    When I GET /locked/x
    Then the status is 401
    And the header "WWW-Authenticate" is "Bearer"
    When I GET /locked/x with header "Authorization: Bearer not-a-token"
    Then the status is 401
    And echo upstream "accounts" received nothing
    When I GET /locked/x as "rita" by bearer
    Then the answer came from echo upstream "accounts" and is what it received
    And echo upstream "accounts" received none of the headers X-User-Id, X-Username
    When I GET /locked/x as "rita" by session
    Then the answer came from echo upstream "accounts" and is what it received
    And echo upstream "accounts" received "Authorization: Bearer" with the JWT of "rita"'s session in Redis
    And echo upstream "accounts" received no SESSION cookie

  Scenario: identity_headers passes on the verified caller; a client's copies never arrive
    Given a logged-in user "ida"
    When I GET /me/x as "ida" by bearer with headers:
      | X-User-Id  | u_admin |
      | X-Username | admin   |
      | X_User_Id  | u_admin |
    Then the answer came from echo upstream "accounts" and is what it received
    And echo upstream "accounts" received the X-User-Id and X-Username of "ida"
    And echo upstream "accounts" received no header with an underscore in its name
    When I GET /me/x as "ida" by session with header "X-User-Id: u_admin"
    Then the answer came from echo upstream "accounts" and is what it received
    And echo upstream "accounts" received the X-User-Id and X-Username of "ida"

  @needs:process
  Scenario: A reload by SIGHUP puts the new routes file in force for the next request
    When I GET /open/x
    Then the answer came from echo upstream "accounts" and is what it received
    When the routes file becomes:
      """
      jwks_service = "auth"

      [[services]]
      name = "auth"

      [[services]]
      name = "catalog"

      [[services]]
      name = "accounts"

      [[routes]]
      prefix = "/auth"
      service = "auth"
      pass_credentials = true

      [[routes]]
      prefix = "/open"
      service = "accounts"
      identity = "required"

      [[routes]]
      prefix = "/catalogue"
      service = "catalog"
      strip_prefix = true
      """
    And every gateway is told to reload its routes file
    Then the admin metric "gantry_gateway_config_reloads_total{result=\"ok\"}" is 1
    And GET /open/x answers 401
    And GET /shop/items/7 answers 404
    When I GET /catalogue/items/7
    Then the answer came from echo upstream "catalog" and is what it received
    And echo upstream "catalog" received exactly these requests:
      | method | path     |
      | GET    | /items/7 |

  @needs:process
  Scenario: A routes file with a mistake is refused whole on reload, and the routes in force stay
    When the routes file becomes:
      """
      [[services]]
      name = "accounts"

      [[routes]]
      prefix = "/open"
      service = "accounts"

      [[routes]]
      prefix = "/everything"
      service = "nowhere"
      """
    And every gateway is told to reload its routes file
    Then the admin metric "gantry_gateway_config_reloads_total{result=\"error\"}" is 1
    And the admin metric "gantry_gateway_config_reloads_total{result=\"ok\"}" is 0
    And every gateway's log says the routes file was refused at the line with "nowhere"
    And GET /locked/x answers 401
    When I GET /shop/orders/42
    Then the answer came from echo upstream "orders" and is what it received

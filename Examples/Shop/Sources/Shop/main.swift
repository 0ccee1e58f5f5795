import Foundation
import Hummingbird
import ShopApp

// `swift run Shop [STORE_DIR] [PORT]`: the shop on 127.0.0.1, its jobs in STORE_DIR.
let arguments = CommandLine.arguments.dropFirst()
let directory = arguments.first ?? FileManager.default.temporaryDirectory.appendingPathComponent("shop-jobs").path
let port = arguments.dropFirst().first.flatMap(Int.init) ?? 8080
let shop = try Shop(storePath: directory)
print("shop on http://127.0.0.1:\(port) (dashboard: /admin), jobs in \(directory)")
try await shop.application(port: port).runService()

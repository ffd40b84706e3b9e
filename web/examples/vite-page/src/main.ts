// A plain page on the packed package: the client (protocol in its Worker) and the viem
// adapter, as an application imports them.
import { WalletClient, WalletError } from "@wallet-mpc/web";
import { toViemAccount } from "@wallet-mpc/web/viem";

const out = document.getElementById("out")!;
document.getElementById("health")!.addEventListener("click", async () => {
  const cosignerUrl = (document.getElementById("cosigner") as HTMLInputElement).value;
  try {
    const wallet = await WalletClient.open({ cosignerUrl });
    out.textContent = JSON.stringify(await wallet.health());
    if (await wallet.walletInfo()) out.textContent += `\n${(await toViemAccount(wallet)).address}`;
  } catch (e) {
    out.textContent = e instanceof WalletError ? `${e.code}: ${e.message}` : String(e);
  }
});
